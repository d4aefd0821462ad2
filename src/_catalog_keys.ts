/**
 * The context keys an event catalog writes, apart from the catalog itself:
 * the tracker stamps the version without loading the JSON Schema validator.
 *
 * @module
 */

/** The context key that carries the version of the definition an event matched. */
export const EVENT_TYPE_VERSION = "event_type_version";
/** The context key under which a `tag`ging `SchemaProcessor` lists the failing fields. */
export const EVENT_TYPE_ERRORS = "event_type_errors";

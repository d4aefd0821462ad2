/**
 * Option checks shared by constructors, with std-style messages.
 *
 * @module
 */

/**
 * Returns `value` if it is a positive integer.
 *
 * @throws {RangeError} Otherwise, naming the owner, the option and the value.
 */
export function positiveInteger(owner: string, name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`Cannot create ${owner} as '${name}' must be a positive integer: current value is ${value}`);
  }
  return value;
}

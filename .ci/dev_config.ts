/**
 * dev/deno.json is the config of the tests, benches and Worker bundling: the root import map plus the dev tools
 * (a separate config, not a workspace member, because Deno installs every member's and every lockfile package
 * on any `deno run`, `deno task start` included). This check keeps the two in step: every root import is in
 * dev/deno.json with the same target, the compiler options are the same, and the packages both lockfiles
 * resolve are the same versions. It also checks that deno.lock names no package the root imports do not
 * (a `deno run npm:…` or a `deno test` without `--config dev/deno.json` at the root writes one there, and
 * `deno task start` would then install it).
 *
 *   deno run --no-config --no-lock --allow-read .ci/dev_config.ts
 *
 * @module
 */

const root = new URL("../", import.meta.url);
const readJson = async (path: string) => JSON.parse(await Deno.readTextFile(new URL(path, root)));

const config = await readJson("deno.json");
const dev = await readJson("dev/deno.json");
const problems: string[] = [];

for (const [name, target] of Object.entries<string>(config.imports ?? {})) {
  // A path relative to the root is one directory further up from dev/.
  const expected = target.startsWith("./") ? `../${target.slice(2)}` : target;
  const actual = dev.imports?.[name];
  if (actual !== expected) {
    problems.push(
      `dev/deno.json imports["${name}"] is ${JSON.stringify(actual)}: expected ${JSON.stringify(expected)}`,
    );
  }
}
if (JSON.stringify(dev.compilerOptions) !== JSON.stringify(config.compilerOptions)) {
  problems.push("dev/deno.json compilerOptions differ from deno.json's");
}

/** The package of `npm:name@range` or `jsr:@scope/name@range` (no version part). */
const packageOf = (specifier: string) => {
  const bare = specifier.replace(/^(npm|jsr):\/?/, "");
  const at = bare.indexOf("@", 1);
  return `${specifier.slice(0, 4)}${at < 0 ? bare : bare.slice(0, at)}`;
};
const rootPackages = new Set(
  Object.values<string>(config.imports ?? {}).filter((t) => /^(npm|jsr):/.test(t)).map(packageOf),
);

const lock = await readJson("deno.lock");
for (const specifier of Object.keys(lock.specifiers ?? {})) {
  if (!rootPackages.has(packageOf(specifier))) {
    problems.push(
      `deno.lock holds ${specifier}, which no import of deno.json names: deno task start would install it ` +
        "(restore deno.lock from git, or delete it and run deno install, then deno install --config dev/deno.json)",
    );
  }
}
const devLock = await readJson("dev/deno.lock");
for (const [specifier, resolved] of Object.entries<string>(lock.specifiers ?? {})) {
  const devResolved = devLock.specifiers?.[specifier];
  if (devResolved === undefined) {
    problems.push(`dev/deno.lock lacks ${specifier} (deno.lock: ${resolved}): run deno install --config dev/deno.json`);
  } else if (devResolved.split("_")[0] !== resolved.split("_")[0]) {
    problems.push(`${specifier} is ${resolved} in deno.lock but ${devResolved} in dev/deno.lock`);
  }
}

if (problems.length > 0) {
  console.error(`The runtime and dev configs are out of step:\n- ${problems.join("\n- ")}`);
  Deno.exit(1);
}
console.log(
  `dev/deno.json: the ${Object.keys(config.imports ?? {}).length} root imports, same targets and versions; ` +
    `${Object.keys(dev.imports).length - Object.keys(config.imports ?? {}).length} dev tools on top`,
);

// Builds dist/: ESM and CJS for Node and bundlers (socket.io-client stays a dependency),
// a self-contained browser ESM bundle (socket.io-client inside; what /demo serves), and the
// type declarations (tsc, which also type-checks).
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const entry = join(root, "src", "index.ts");
rmSync(join(root, "dist"), { recursive: true, force: true });
const common = { entryPoints: [entry], bundle: true, target: "es2020", logLevel: "warning" };
await build({ ...common, format: "esm", platform: "neutral", external: ["socket.io-client"], outfile: join(root, "dist/esm/index.js") });
await build({ ...common, format: "cjs", platform: "node", external: ["socket.io-client"], outfile: join(root, "dist/cjs/index.cjs") });
await build({ ...common, format: "esm", platform: "browser", outfile: join(root, "dist/browser/backchannel-client.js") });
execFileSync(join(root, "node_modules", ".bin", "tsc"), ["-p", join(root, "tsconfig.json")], { stdio: "inherit" });

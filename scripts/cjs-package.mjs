// Marks dist/cjs as CommonJS so that `require("plexus")` loads the CommonJS build.
import { writeFileSync } from "node:fs";
writeFileSync(new URL("../dist/cjs/package.json", import.meta.url), '{ "type": "commonjs" }\n');

'use strict';
// Writes dist/lib/index.mjs and dist/server/index.mjs: ES modules that re-export the CommonJS build by name,
// so `import { locationGuard } from 'glance-edge'` and `require('glance-edge')` load one copy.
const fs = require('node:fs');
const path = require('node:path');
const dist = path.join(__dirname, '..', 'dist');
for (const entry of ['lib/index', 'server/index']) {
  const names = Object.keys(require(path.join(dist, `${entry}.js`))).filter((n) => n !== 'default' && n !== '__esModule');
  const lines = [`import cjs from './${path.basename(entry)}.js';`, ...names.map((n) => `export const ${n} = cjs.${n};`), 'export default cjs;', ''];
  fs.writeFileSync(path.join(dist, `${entry}.mjs`), lines.join('\n'));
}

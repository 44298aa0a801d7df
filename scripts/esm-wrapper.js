'use strict';
// Writes dist/index.mjs and dist/server.mjs: ES modules that re-export the CommonJS build by name,
// so `import { locationGuard } from 'glance-edge'` and `require('glance-edge')` load one copy.
const fs = require('node:fs');
const path = require('node:path');
const dist = path.join(__dirname, '..', 'dist');
for (const entry of ['index', 'server']) {
  const names = Object.keys(require(path.join(dist, `${entry}.js`))).filter((n) => n !== 'default' && n !== '__esModule');
  const lines = [`import cjs from './${entry}.js';`, ...names.map((n) => `export const ${n} = cjs.${n};`), 'export default cjs;', ''];
  fs.writeFileSync(path.join(dist, `${entry}.mjs`), lines.join('\n'));
}

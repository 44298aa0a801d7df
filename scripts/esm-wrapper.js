'use strict';
// Writes dist/index.mjs: an ES module that re-exports the CommonJS build by name, so
// `import { locationGuard } from 'glance-edge'` and `require('glance-edge')` load one copy.
const fs = require('node:fs');
const path = require('node:path');
const dist = path.join(__dirname, '..', 'dist');
const names = Object.keys(require(path.join(dist, 'index.js'))).filter((n) => n !== 'default' && n !== '__esModule');
const lines = ["import cjs from './index.js';", ...names.map((n) => `export const ${n} = cjs.${n};`), 'export default cjs;', ''];
fs.writeFileSync(path.join(dist, 'index.mjs'), lines.join('\n'));

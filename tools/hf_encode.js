#!/usr/bin/env node
// hf_encode.js - the reference: HF `tokenizers` (npm) encodes a file, one id per line.
//   node tools/hf_encode.js MODULE_DIR tokenizer.json text.txt > ids.txt
'use strict';
const fs = require('fs');
const tk = require(process.argv[2]);
(async () => {
  const t = tk.Tokenizer.fromFile(process.argv[3]);
  const text = fs.readFileSync(process.argv[4], 'utf8');
  const e = await t.encode(text, null, { addSpecialTokens: false });
  process.stdout.write(e.getIds().join('\n') + '\n');
})().catch((e) => { console.error(e); process.exit(1); });

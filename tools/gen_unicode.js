#!/usr/bin/env node
// gen_unicode.js - regenerate the code-point tables of deepseek.h's pre-tokenizer.
//
//   node tools/gen_unicode.js ../shared/deepseek-tokenizer/pretokenizer.json > /tmp/tables.h
//
// The letter, punctuation and CJK classes are read from the character classes of DeepSeek's split
// patterns (pretokenizer.json, patterns 2, 3 and 5). Whitespace is Unicode White_Space (what `\s`
// means in Oniguruma, the regex engine of HF `tokenizers`) and "numeric" is Unicode N (Nd, Nl, No:
// what Rust's char::is_numeric tests, used by the Digits pre-tokenizer), both from this Node's ICU.
// Paste the output over the block between "BEGIN GENERATED TABLES" and "END GENERATED TABLES".
'use strict';
const fs = require('fs');
const pt = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const pats = pt.split_regexes_in_order_behavior_isolated;

function classRanges(pat) {
  const open = pat.indexOf('['), close = pat.lastIndexOf(']');
  const cps = [...pat.slice(open + 1, close)].map((c) => c.codePointAt(0));
  const r = [];
  for (let i = 0; i < cps.length; i++) {
    if (i + 2 < cps.length && cps[i + 1] === 0x2d) { r.push([cps[i], cps[i + 2]]); i += 2; }
    else r.push([cps[i], cps[i]]);
  }
  return normalize(r);
}
function normalize(r) {
  r.sort((a, b) => a[0] - b[0]);
  const out = [];
  for (const [a, b] of r) {
    if (out.length && a <= out[out.length - 1][1] + 1) out[out.length - 1][1] = Math.max(out[out.length - 1][1], b);
    else out.push([a, b]);
  }
  return out;
}
function propRanges(re) {
  const r = [];
  for (let c = 0; c <= 0x10ffff; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    if (re.test(String.fromCodePoint(c))) r.push([c, c]);
  }
  return normalize(r);
}
function emit(name, r, what) {
  console.log(`/* ${what}: ${r.length} ranges */`);
  console.log(`static const uint32_t ${name}[][2] = {`);
  let line = '   ';
  for (const [a, b] of r) {
    const s = ` {0x${a.toString(16).toUpperCase()},0x${b.toString(16).toUpperCase()}},`;
    if (line.length + s.length > 110) { console.log(line); line = '   '; }
    line += s;
  }
  console.log(line + '\n};');
}
emit('ds__letter_ranges', classRanges(pats[1]), 'split 2, `\\s?[...]+`: the cased letters');
emit('ds__punct_ranges', classRanges(pats[2]), 'split 3, `\\s?[...]+`: punctuation');
emit('ds__cjk_ranges', classRanges(pats[4]), 'split 5, `[...]+`: CJK and the rest of U+0800..U+4E00, Hangul');
emit('ds__space_ranges', propRanges(/^\p{White_Space}$/u), '`\\s`: Unicode White_Space');
emit('ds__numeric_ranges', propRanges(/^\p{N}$/u), 'Digits: Unicode N (Nd, Nl, No), Unicode of ICU ' + process.versions.icu + ' / ' + process.versions.unicode);

#!/usr/bin/env node
// mixed_text.js - a deterministic mixed-language test text for comparing tokenizers.
//   node tools/mixed_text.js BYTES > out.txt
// English and Chinese from data/, code, numbers, emoji, whitespace oddities, the special-token
// strings, and random code points from every plane (so every class table is exercised). Valid
// UTF-8 only: HF `tokenizers` takes Rust strings, which cannot hold invalid bytes (the C tests
// check invalid bytes on their own: round trips, and pieces that tile the input).
'use strict';
const fs = require('fs');
const path = require('path');
const target = parseInt(process.argv[2] || '1000000');
let seed = 12345;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
const data = (f) => fs.readFileSync(path.join(__dirname, '..', 'data', f), 'utf8');
const sources = [data('tinyshakespeare.txt'), data('tang300.txt'), data('lunyu.txt')];
const snippets = [
  'int main(void) {\n\treturn x->y[3] >= 0x1F ? a : b; // done\n}\n', 'def f(x):\n    return {"k": [1, 2.5e-3, None]}\n',
  '  \t  trailing   \n', 'a\u00a0b\u2009c\u3000d\u2028e\r\nf\r', 'Prices: $1,234.56 (+7%) on 2024-01-31 at 09:45.',
  '½ ¼ ² ³ ① Ⅻ ٣٤٥ ३४ ๑๒ ４５ 𝟗', '😀😀 👍🏽 🇨🇳 ❤️ ok', 'naïve café Straße ÆØÅ Ελληνικά Русский Հայերեն ქართული',
  'カタカナ ひらがな 한국어 텍스트 ไทย العربية עברית हिन्दी', '「引号」《书名》——…… ‘single’ “double”',
  '<｜begin▁of▁sentence｜>User: Hi\n\nAssistant: Hello!<｜end▁of▁sentence｜>', 'Führer ø ö ú ÿ õ ÷ û ý À ù Á þ ü',
  'ＡＢＣ ａｂｃ！？ ｆｕｌｌ，ｗｉｄｔｈ', '   \n\n\n   ', 'x=1;y=22;z=333;', 'ﬁ ﬂ K Ω ℃ ℉', '\t\t\tindented\n',
];
function randomCodePoint() {
  const r = rnd(10);
  let cp;
  if (r < 3) cp = 0x20 + rnd(0x60);
  else if (r < 6) cp = 0x80 + rnd(0x3000 - 0x80);
  else if (r < 8) cp = 0x3000 + rnd(0xd800 - 0x3000);
  else if (r < 9) cp = 0xe000 + rnd(0x10000 - 0xe000);
  else cp = 0x10000 + rnd(0x110000 - 0x10000);
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;
  return String.fromCodePoint(cp);
}
const out = [];
let bytes = 0;
while (bytes < target) {
  const k = rnd(10);
  let s;
  if (k < 5) { const src = sources[rnd(3)]; const a = rnd(src.length - 400); s = src.slice(a, a + 50 + rnd(350)); }
  else if (k < 8) s = snippets[rnd(snippets.length)];
  else { s = ''; const n = 1 + rnd(40); for (let i = 0; i < n; i++) s += rnd(4) ? randomCodePoint() : ' '; }
  out.push(s);
  bytes += Buffer.byteLength(s, 'utf8');
}
process.stdout.write(out.join(''));

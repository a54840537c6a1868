// llama.cpp's speed on one GGUF file, as users get it prebuilt (node-llama-cpp), for
// side-by-side comparison with `koto bench` (bench/vs-llama-cpp.sh). Not part of koto
// or its tests.
//
//   node llama-cpp-bench.mjs MODEL.gguf [pp=512] [tg=128] [threads=2]
//
// Prints one JSON line: {"pp_tokens_per_s": ..., "tg_tokens_per_s": ...}. pp: one
// evaluation of `pp` random token ids in a fresh sequence; tg: `tg` tokens generated
// greedily one at a time after a 4-token prompt.
import { getLlama } from "node-llama-cpp";

const [modelPath, ppArg = "512", tgArg = "128", threadsArg = "2"] = process.argv.slice(2);
const pp = Number(ppArg);
const tg = Number(tgArg);
const threads = Number(threadsArg);

const llama = await getLlama({ gpu: false });
const model = await llama.loadModel({ modelPath });
const context = await model.createContext({ contextSize: Math.max(pp, tg + 8) + 16, threads, batchSize: 512 });

let seed = 1;
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const vocab = model.tokens.vocabularySize ?? 32000;
const randomTokens = (n) => Array.from({ length: n }, () => 10 + Math.floor(random() * (vocab - 20)));

const result = {};
if (pp > 0) {
  const sequence = context.getSequence();
  const tokens = randomTokens(pp);
  const start = performance.now();
  await sequence.evaluateWithoutGeneratingNewTokens(tokens);
  result.pp_tokens_per_s = pp / ((performance.now() - start) / 1000);
  sequence.dispose();
}
if (tg > 0) {
  const sequence = context.getSequence();
  let produced = 0;
  let start = 0;
  for await (const token of sequence.evaluate(randomTokens(4), { temperature: 0 })) {
    void token;
    if (produced === 0) start = performance.now();  // the prompt's evaluation is not timed
    produced += 1;
    if (produced > tg) break;
  }
  result.tg_tokens_per_s = tg / ((performance.now() - start) / 1000);
  sequence.dispose();
}
console.log(JSON.stringify(result));
await context.dispose();
await model.dispose();
await llama.dispose();

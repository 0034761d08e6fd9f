// The example balancing policy "fastest", in JavaScript (componentize-js).
//
// Prefers the backend with the lowest latency per unit of weight; a request may pin a healthy
// backend by name with a header (default `x-vane-pin`). See README.md.
//
// Bindings: the exported interface `policy` is the exported object `policy`; WIT kebab-case
// names are camelCase (`latency-ewma-us` -> `latencyEwmaUs`); `u64` is a BigInt
// (`request.sequence`, and each entry of `states`, a BigUint64Array); `flags` is an object of
// booleans; an `option` is its value or `undefined`; `result<needs, string>` is returned as the
// plain `needs` object for ok, and `throw "message"` for err.

const DEFAULT_HEADER = "x-vane-pin";
const MAX_ANSWER = 3;
// The columns `pick` reads. `states` holds the state bits, then these, in the order `columns`
// declares them (weight before latency-ewma-us), one number per backend each.
const COLUMNS = { weight: true, latencyEwmaUs: true };
// Bit 0 of a backend's state bits: it may receive this request.
const ELIGIBLE = 1n;

let header = DEFAULT_HEADER;
let names = [];

function configure(config, backends) {
  let wanted;
  if (config === "") {
    wanted = DEFAULT_HEADER;
  } else if (config.startsWith("header=")) {
    wanted = config.slice("header=".length);
  } else {
    throw `unknown config ${config}: expected header=NAME`;
  }
  header = wanted;
  names = backends.map((backend) => backend.name);
  return { headers: [wanted], feedback: false, target: false, columns: COLUMNS };
}

function pick(request, states) {
  const n = states.length / 3;
  const healthy = (i) => (states[i] & ELIGIBLE) !== 0n;
  const weight = (i) => Number(states[n + i]);
  const latency = (i) => Number(states[2 * n + i]);

  let pinned = -1;
  for (const h of request.headers ?? []) {
    if (h.name !== header) continue;
    const i = names.indexOf(h.value);
    if (i >= 0 && i < n && healthy(i)) {
      pinned = i;
      break;
    }
  }

  if (n === 0) return [];
  // Values stay below 2^53: latency (u32) * 1000 fits, so Number with Math.floor is exact.
  const shift = Number(BigInt(request.sequence) % BigInt(n));
  const candidates = [];
  for (let i = 0; i < n; i++) {
    if (healthy(i) && i !== pinned) {
      candidates.push({
        i,
        score: Math.floor((latency(i) * 1000) / weight(i)),
        rot: (i + n - shift) % n,
      });
    }
  }
  candidates.sort((x, y) => x.score - y.score || x.rot - y.rot);

  const answer = pinned >= 0 ? [pinned] : [];
  for (const c of candidates) {
    if (answer.length >= MAX_ANSWER) break;
    answer.push(c.i);
  }
  return answer;
}

function observe(_outcomes) {}

export const policy = { configure, pick, observe };

// The example balancing policy "fastest", in JavaScript (componentize-js).
//
// Prefers the backend with the lowest latency per unit of weight; a request may pin a healthy
// backend by name with a header (default `x-vane-pin`). See README.md.
//
// Bindings: the exported interface `policy` is the exported object `policy`; WIT kebab-case
// names are camelCase (`latency-ewma-us` -> `latencyEwmaUs`); `u64` is a BigInt
// (`request.sequence`); `result<needs, string>` is returned as the plain `needs` object for ok,
// and `throw "message"` for err.

const DEFAULT_HEADER = "x-vane-pin";
const MAX_ANSWER = 3;

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
  return { headers: [wanted], feedback: false, target: false };
}

function pick(request, states) {
  const healthy = states.healthy;
  const n = healthy.length;

  let pinned = -1;
  for (const h of request.headers) {
    if (h.name !== header) continue;
    const i = names.indexOf(h.value);
    if (i >= 0 && i < n && healthy[i]) {
      pinned = i;
      break;
    }
  }

  if (n === 0) return [];
  // Values stay below 2^53: latency (u32) * 1000 fits, so Number with Math.floor is exact.
  const shift = Number(BigInt(request.sequence) % BigInt(n));
  const latency = states.latencyEwmaUs;
  const weight = states.weight;
  const candidates = [];
  for (let i = 0; i < n; i++) {
    if (healthy[i] && i !== pinned) {
      candidates.push({
        i,
        score: Math.floor((Number(latency[i]) * 1000) / Number(weight[i])),
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

function observe(_backend, _status, _latencyUs) {}

export const policy = { configure, pick, observe };

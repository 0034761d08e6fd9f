// {{name}}: a vane balancing policy, as `vane plugin new` wrote it. Make it yours.
//
// Among the backends that may receive the request, the one with the fewest requests in flight
// per unit of weight goes first; ties take turns. The answer ranks `ranked` backends (default
// 2): the first choice, then where a retry goes. Config: "" or "ranked=N", N from 1 to 8.
//
// Bindings: the exported interface `policy` is the exported object `policy`; WIT kebab-case
// names are camelCase (`in-flight` -> `inFlight`); `u64` is a BigInt (`request.sequence`, and
// each entry of `states`, a BigUint64Array); `flags` is an object of booleans; an `option` is
// its value or `undefined`; `result<needs, string>` is returned as the plain `needs` object for
// ok, and `throw "message"` for err.

const DEFAULT_RANKED = 2;
const MAX_RANKED = 8;
// The columns `pick` reads. `states` holds every backend's state bits, then these columns in
// the order `columns` declares them (weight before in-flight), one number per backend each.
const COLUMNS = { weight: true, inFlight: true };
// Bit 0 of a backend's state bits: it may receive this request.
const ELIGIBLE = 1n;

let ranked = DEFAULT_RANKED;

function parseRanked(config) {
  if (config.trim() === "") return DEFAULT_RANKED;
  const at = config.indexOf("=");
  const key = (at < 0 ? config : config.slice(0, at)).trim();
  const value = at < 0 ? "" : config.slice(at + 1).trim();
  if (key !== "ranked") throw `unknown config ${JSON.stringify(config)}: expected "" or ranked=N`;
  const n = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= MAX_RANKED)) throw `ranked=${value}: expected 1 to ${MAX_RANKED}`;
  return n;
}

function configure(config, _backends) {
  ranked = parseRanked(config);
  return { headers: [], feedback: false, target: false, columns: COLUMNS };
}

function pick(request, states) {
  const n = states.length / 3;
  const weight = (i) => (states[n + i] > 0n ? states[n + i] : 1n);
  const inFlight = (i) => states[2 * n + i];
  const eligible = [];
  for (let i = 0; i < n; i++) {
    if ((states[i] & ELIGIBLE) !== 0n) eligible.push(i);
  }
  // Declining ([]): vane's built-in round-robin serves the request.
  if (eligible.length === 0) return [];
  // Ties take turns: the eligible backends in order, from the (sequence % m)-th of the m.
  const start = Number(request.sequence % BigInt(eligible.length));
  const turns = eligible.slice(start).concat(eligible.slice(0, start));
  // Fewest in flight per unit of weight first, compared exactly (a/b < c/d as a*d < c*b);
  // the sort is stable, so equal loads keep their turns.
  turns.sort((a, b) => {
    const x = inFlight(a) * weight(b);
    const y = inFlight(b) * weight(a);
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return turns.slice(0, ranked);
}

function observe(_outcomes) {}

export const policy = { configure, pick, observe };

"""The Redis store: the state replicas share, with the memory store's semantics exactly.

Every method is at most one round trip: a Lua script run by ``EVALSHA`` (registered with
redis-py's ``register_script``; loaded again on ``NOSCRIPT``, after a Redis restart say), or
for ``cooldowns`` one ``MGET``. Each is atomic: ``acquire`` takes from all its buckets or from
none, whatever other replicas do at the same moment. Two things save round trips, so that an
admission is one (the take) and a settlement one (the budget's):

- **Cooldowns read are kept** until one changes. Every change sets the namespace's cooldown
  generation (``...:cooldown-gen``) to a new random token, and every take returns the token: a
  store whose cooldowns were read at another token reads them again (one ``MGET``, with the
  token); its own changes it writes into what it read. So a cooldown another replica sets is
  seen once this store's next call has come back after it: at most one call late.
- **Corrections are carried** (``adjust_later``, ``clamp_later``): held in the store object and
  applied, in order, by the script of its next ``acquire``, ``acquire_leased`` or
  ``settle_lease`` before its own work (any other call sends them first; ``flush`` sends them on
  their own). The engine holds a settlement's limit corrections back and then settles the
  budget, and flushes at the end of every event, so none waits past the event that made it.

The scripts carry out :class:`keypolicy.state.memory.MemoryStore`'s arithmetic step for step
(same operations in the same order, same capping: a new bucket starts full, a missing bucket is
a full one, a refusal writes nothing, times that go backwards refill nothing), so an engine
makes the same decisions on either store; ``tests/state/`` holds the two to it, float for float.

Decisions, and why:

- **Time is the caller's.** Every script is handed the caller's ``now``; none calls ``TIME``.
  One implementation serves wall time and virtual time, and a replica whose clock is off by a
  few milliseconds sees refill as it would alone.
- **Exact floats.** Redis turns a Lua number returned by a script into an *integer* reply
  (truncated: 0.75 comes back as 0), and redis-py would format a Python float sent as an
  argument with ``repr`` anyway. So numbers travel as text both ways: Python sends
  ``repr(float)`` (the shortest string that reads back as the same double), the scripts read it
  with ``tonumber`` (``strtod``, correctly rounded) and send and store ``string.format('%.17g',
  x)`` (17 significant digits identify a double), which Python reads with ``float()``. Lua's
  numbers are IEEE doubles like Python's, and each operation is rounded on its own in both, so
  the levels agree to the last bit (``inf`` and ``nan`` travel as ``inf``/``nan``).
- **Keys** are ``PREFIX{NAMESPACE}:bucket:NAME`` and ``PREFIX{NAMESPACE}:cooldown:NAME``
  (default prefix ``keypolicy:``), and for replicas' coordination ``...:claim:NAME``, a lease's
  record ``...:lease:ID`` (JSON: its buckets' keys, capacities, rates and amounts as exact text),
  the sorted set ``...:leases`` of open leases scored by their end, the counter
  ``...:lease-seq`` that numbers them, and ``...:cooldown-gen`` (above). ``NAME`` is the
  engine's own, already per project or organization, model and dimension
  (``limit:project:clinical/gpt-4o/tpm``) or per budget and period
  (``budget:clinic-monthly:2026-11``); replicas, and policies, that use one namespace share
  those buckets. The namespace is the *hash tag* (``{...}``): Redis Cluster puts every key
  with the same tag in one slot, and a script may only touch keys of one slot. One ``acquire``
  takes from the project's buckets, the organization's and the budgets' together, so nothing
  finer than the whole namespace works for all of them; one tag per namespace (use the
  organization: ``namespace="org-clinic"``) is the simple correct choice. The price: all of one
  namespace's state lives on one shard, and its admissions are bounded by one Redis core (tens of
  thousands of scripts a second, far above any organization's request limits); different
  namespaces spread over the cluster. (The reaper's script reads the buckets a lease names from
  its record rather than from its declared keys: keys of the same namespace, so of the same
  slot, which Redis Cluster serves.)
- **Expiry**, so that nothing stale piles up (a missing bucket is a full one, so a key may go once
  its bucket would be full again). Each write sets the key's time to live in the caller's time:
  ``(at - now) + (capacity - level) / rate`` (when it refills to full) plus ``expiry_margin``
  (default 60 s: clock skew between replicas, and a caller's clock that runs slower than Redis's,
  as a test's fake clock may; the key then lives longer, never shorter than that). A bucket of
  rate 0 never refills: the engine uses those for calendar budgets, named by their period (a day,
  an ISO week or a month: at most 31 days, of which a bucket may have been made on the first), so
  it lives ``STILL_TTL_S`` = 40 days after its last write, by when its period is over. (A rate-0
  bucket used for anything else would come back full after 40 idle days.) A cooldown lives until
  it ends plus the margin, counted from the latest ``now`` this store has been handed (the
  interface gives ``set_cooldown`` no ``now``), or 40 days if it has seen none. Every key lives
  at least the margin after its last write; times to live are capped at ``LONGEST_TTL_S`` (ten
  years). A claim lives until it ends plus the margin; a lease's record, the index and the
  counter until the lease ends plus ``STILL_TTL_S`` (a reaper may come late: the buckets it
  gives back live that long too). So what expiry changes is never a decision: a bucket gone
  reads full, as it would have read; a cooldown gone reads 0.0 instead of an end already past;
  a claim gone stands for nobody, as one that ended. (Only a caller whose clock
  stepped back, or fell behind Redis's, by more than the margin could tell.)
- **Failures** (connection refused, a timeout, an error answer) raise
  :class:`keypolicy.state.StoreUnavailable`, one type, whose message names the store by its URL
  with any password masked. ``Engine.handle`` takes any exception from a store call as a store
  failure (a ``StoreFault`` action, the request rejected with ``store_error`` or its correction
  lost), and so does the runtime. Timeouts are bounded (``timeout`` and ``connect_timeout``,
  0.5 s each by default) and **nothing is retried**: redis-py's default (ten retries with
  backoff) would hang a caller for seconds and could apply a refund twice. A call that raised
  was applied at most once (a timeout may come after Redis carried it out: the engine then
  treats capacity that was taken as not taken, and a give-back that happened as lost, both on the
  side of caution; a budget hold taken so, or one whose settlement was lost, is leased, and comes
  back when its lease ends). The next call reconnects by itself.
- RESP2 (``protocol=2``): the replies are plain strings either way, and redis-py's RESP3 default
  turns on "maintenance notifications", which relax the read timeout to 10 s during a server's
  maintenance and skip the check that finds a pooled connection the server has closed.
- Commands go out on redis-py connections the store keeps itself (an idle list per process),
  not through ``Redis.execute_command``: redis-py 8 wraps every command in retry, observability
  and pool bookkeeping that cost about as much client CPU as the round trip itself
  (``benchmarks/redis_state.py`` measures both paths). The connections are redis-py's own
  (its parser, hiredis when installed, TLS, AUTH, the URL's options).
"""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from keypolicy import urls
from keypolicy.core.store import BucketRef, Store
from keypolicy.state import StoreUnavailable

if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_PREFIX",
    "DEFAULT_TIMEOUT_S",
    "EXPIRY_MARGIN_S",
    "LONGEST_TTL_S",
    "SKEW_WARNING_S",
    "STILL_TTL_S",
    "ClockOffset",
    "RedisStore",
    "clock_offset",
]

DEFAULT_PREFIX = "keypolicy:"
DEFAULT_TIMEOUT_S = 0.5
"""How long a call waits for Redis's answer before it fails."""
DEFAULT_CONNECT_TIMEOUT_S = 0.5
"""How long making a connection may take before the call fails."""
EXPIRY_MARGIN_S = 60.0
"""Added to every time to live: skew between replicas' clocks, and slow clocks."""
STILL_TTL_S = 40 * 86400.0
"""How long a bucket that never refills (a calendar budget's) lives after its last write."""
LONGEST_TTL_S = 10 * 365 * 86400.0
"""No key lives longer than this after its last write."""

SKEW_WARNING_S = 0.05
"""An offset between a replica's clock and Redis's beyond which the runtime warns at start."""

_INSTALL = "the Redis store needs the redis package: pip install 'keypolicy[redis]'"

# The memory store's steps, in Lua. ``parse`` reads a bucket's stored text: its level and the
# time it was last brought up to date (nil: missing, a full bucket); ``refilled`` is
# MemoryStore._level; ``current`` is MemoryStore._state; ``write`` stores both as exact text,
# with the key's expiry. Several buckets are read with one MGET.
_COMMON = """
local function fmt(x) return string.format('%.17g', x) end
local function parse(v)
  if not v then return nil, nil end
  local sp = string.find(v, ' ', 1, true)
  return tonumber(string.sub(v, 1, sp - 1)), tonumber(string.sub(v, sp + 1))
end
local function refilled(level, at, capacity, rate, now)
  if now > at then
    local l = level + (now - at) * rate
    if l > capacity then return capacity end
    return l
  end
  return level
end
local function current(key, capacity, rate, now)
  local level, at = parse(redis.call('GET', key))
  if level == nil then return capacity, now end
  level = refilled(level, at, capacity, rate, now)
  if now > at then at = now end
  if level > capacity then level = capacity end
  return level, at
end
local function write(key, level, at, capacity, rate, now, margin, still, longest)
  local secs
  if rate > 0 then
    local deficit = capacity - level
    if not (deficit > 0) then deficit = 0 end
    secs = (at - now) + deficit / rate + margin
  else
    secs = still
  end
  if not (secs < longest) then secs = longest end
  if secs < 0.001 then secs = 0.001 end
  redis.call('SET', key, fmt(level) .. ' ' .. fmt(at), 'PX', math.ceil(secs * 1000))
end
"""

# Corrections the caller held back (Store.adjust_later / clamp_later), carried by this call and
# applied first, in order: the last ARGV is their count n, the n keys at the end of KEYS their
# buckets, and the 5 * n ARGV before the count their kind ('a': adjust, 'c': clamp), now,
# capacity, rate and value. As ``_ADJUST`` and ``_CLAMP`` below, step for step. Returns n.
# ``correct`` is MemoryStore.adjust (kind 'a': add ``value``, up to capacity) and
# MemoryStore.clamp (kind 'c': lower to ``value``); returns the level.
_CORRECT = """
local function correct(key, kind, now, capacity, rate, value, margin, still, longest)
  local level, at = current(key, capacity, rate, now)
  if kind == 'a' then
    level = level + value
    if not (level < capacity) then level = capacity end
  elseif value < level then
    level = value
  end
  write(key, level, at, capacity, rate, now, margin, still, longest)
  return level
end
"""
_CARRIED = (
    _CORRECT
    + """
local function carried(margin, still, longest)
  local n = tonumber(ARGV[#ARGV])
  if n == 0 then return 0 end
  local k0, a0 = #KEYS - n, #ARGV - 1 - 5 * n
  for i = 1, n do
    local j = a0 + (i - 1) * 5
    correct(KEYS[k0 + i], ARGV[j + 1], tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3]),
            tonumber(ARGV[j + 4]), tonumber(ARGV[j + 5]), margin, still, longest)
  end
  return n
end
"""
)

# ``take`` is MemoryStore.acquire: KEYS[1..n] are the buckets; ARGV: now, margin, still, longest,
# then capacity, rate, amount, floor per bucket. Returns the wait (0 when taken).
_TAKE = """
local function take(n, now, margin, still, longest)
  local values = redis.call('MGET', unpack(KEYS, 1, n))
  local stored = {}
  local wait = 0.0
  for i = 1, n do
    local j = 4 + (i - 1) * 4
    local capacity, rate = tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
    local amount, floor = tonumber(ARGV[j + 3]), tonumber(ARGV[j + 4])
    local level, at = parse(values[i])
    if level == nil then
      stored[KEYS[i]] = false
      level = capacity
    else
      stored[KEYS[i]] = {level, at}
      level = refilled(level, at, capacity, rate, now)
    end
    if amount > 0 and level - amount - floor < -1e-9 then
      local w
      local missing = amount + floor - level
      if missing <= 1e-9 then
        w = 0.0
      elseif rate <= 0 or amount + floor > capacity + 1e-9 then
        w = math.huge
      else
        w = missing / rate
      end
      if w > wait then wait = w end
    end
  end
  if wait > 0 then return wait end
  for i = 1, n do
    local j = 4 + (i - 1) * 4
    local capacity, rate = tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
    local amount = tonumber(ARGV[j + 3])
    local key = KEYS[i]
    local s = stored[key]
    local level, at
    if not s then
      level, at = capacity - amount, now
    else
      level = refilled(s[1], s[2], capacity, rate, now) - amount
      at = s[2]
      if now > at then at = now end
    end
    stored[key] = {level, at}
    write(key, level, at, capacity, rate, now, margin, still, longest)
  end
  return 0
end
"""

# KEYS: the buckets, the cooldowns' generation, the corrections carried. ARGV: as ``take``'s,
# then the corrections. Returns {the wait ('0' when taken), the cooldowns' generation}.
_ACQUIRE = (
    _COMMON
    + _CARRIED
    + _TAKE
    + """
local now = tonumber(ARGV[1])
local margin, still, longest = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS - carried(margin, still, longest) - 1
local wait = take(n, now, margin, still, longest)
local gen = redis.call('GET', KEYS[n + 1]) or ''
if wait > 0 then return {fmt(wait), gen} end
return {'0', gen}
"""
)

# Leases. A lease is a key ``lease:ID`` holding, as JSON, its buckets' keys, capacities, rates and
# amounts (all as exact text), and a member ``ID`` of the sorted set ``leases`` scored by the time
# it ends; ``lease-seq`` counts the leases made. ``extend`` makes a key live at least ``ms``.
_LEASES = """
local function extend(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
local function give(key, capacity, rate, delta, now, margin, still, longest)
  local level, at = current(key, capacity, rate, now)
  level = level + delta
  if not (level < capacity) then level = capacity end
  write(key, level, at, capacity, rate, now, margin, still, longest)
  return level
end
"""

# KEYS: the buckets, then the leases' index and counter, the cooldowns' generation, the
# corrections carried. ARGV: as ``take``'s, then the index of the first bucket leased (from 0),
# the lease's end (exact text), its record's time to live (ms), the prefix of lease keys, then
# the corrections. Returns {wait, '', generation} or {'0', ID, generation}.
_ACQUIRE_LEASED = (
    _COMMON
    + _CARRIED
    + _TAKE
    + _LEASES
    + """
local now = tonumber(ARGV[1])
local margin, still, longest = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS - carried(margin, still, longest) - 3
local wait = take(n, now, margin, still, longest)
local gen = redis.call('GET', KEYS[n + 3]) or ''
if wait > 0 then return {fmt(wait), '', gen} end
local base = 4 + n * 4
local first, ttl = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 3])
local record = {}
for i = first + 1, n do
  local j = 4 + (i - 1) * 4
  record[#record + 1] = {KEYS[i], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]}
end
local id = tostring(redis.call('INCR', KEYS[n + 2]))
redis.call('SET', ARGV[base + 4] .. id, cjson.encode(record), 'PX', ttl)
redis.call('ZADD', KEYS[n + 1], ARGV[base + 2], id)
extend(KEYS[n + 1], ttl)
extend(KEYS[n + 2], ttl)
return {'0', id, gen}
"""
)

# KEYS: the leases' index, the lease's key, its buckets, the corrections carried. ARGV: now,
# margin, still, longest, the lease's ID, then capacity, rate, held, kept per bucket, then the
# corrections. Returns the levels.
_SETTLE_LEASE = (
    _COMMON
    + _CARRIED
    + _LEASES
    + """
local now = tonumber(ARGV[1])
local margin, still, longest = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local last = #KEYS - carried(margin, still, longest)
local stood = redis.call('ZREM', KEYS[1], ARGV[5]) == 1
redis.call('DEL', KEYS[2])
local out = {}
for i = 3, last do
  local j = 5 + (i - 3) * 4
  local capacity, rate = tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  local held, kept = tonumber(ARGV[j + 3]), tonumber(ARGV[j + 4])
  local delta
  if stood then delta = held - kept else delta = -kept end
  out[i - 2] = fmt(give(KEYS[i], capacity, rate, delta, now, margin, still, longest))
end
return out
"""
)

# KEYS: the leases' index. ARGV: now, margin, still, longest, the most to reap, the prefix of
# lease keys. The buckets a lease names are read from its record: keys of this namespace, so of
# the declared key's Cluster slot. Returns how many were reaped.
_REAP = (
    _COMMON
    + _LEASES
    + """
local now = tonumber(ARGV[1])
local margin, still, longest = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[5]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[6] .. id
  local raw = redis.call('GET', key)
  if raw then
    redis.call('DEL', key)
    for _, b in ipairs(cjson.decode(raw)) do
      local capacity, rate, amount = tonumber(b[2]), tonumber(b[3]), tonumber(b[4])
      give(b[1], capacity, rate, amount, now, margin, still, longest)
    end
  end
end
return #ids
"""
)

# KEYS: the claim. ARGV: until (exact text), now, time to live in ms. 1 if claimed, else 0.
_CLAIM = """
local standing = redis.call('GET', KEYS[1])
if standing and tonumber(standing) > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""

# KEYS: the bucket. ARGV: now, margin, still, longest, capacity, rate, then the delta
# (``_ADJUST``) or the level to clamp to (``_CLAMP``). Returns the level.
_ONE_CORRECTION = """
return fmt(correct(KEYS[1], KIND, tonumber(ARGV[1]), tonumber(ARGV[5]), tonumber(ARGV[6]),
                   tonumber(ARGV[7]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])))
"""
_ADJUST = _COMMON + _CORRECT + _ONE_CORRECTION.replace("KIND", "'a'")
_CLAMP = _COMMON + _CORRECT + _ONE_CORRECTION.replace("KIND", "'c'")

# KEYS: the buckets. ARGV: now, then capacity and rate per bucket. Writes nothing.
_LEVELS = (
    _COMMON
    + """
local now = tonumber(ARGV[1])
local values = redis.call('MGET', unpack(KEYS))
local out = {}
for i = 1, #KEYS do
  local capacity, rate = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local level, at = parse(values[i])
  if level == nil then
    level = capacity
  else
    level = refilled(level, at, capacity, rate, now)
    if capacity < level then level = capacity end
  end
  out[i] = fmt(level)
end
return out
"""
)

# KEYS: the cooldown, the cooldowns' generation. ARGV: until (exact text), time to live in ms,
# a new generation, its time to live in ms. Keeps the later; when it changes the cooldown, the
# generation too. Returns {the generation before, 1 if changed else 0}.
_SET_COOLDOWN = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local gen = redis.call('GET', KEYS[2]) or ''
if tonumber(ARGV[1]) > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  return {gen, 1}
end
return {gen, 0}
"""

# KEYS: the corrections carried. ARGV: margin, still, longest, the corrections. Returns n.
_APPLY = (
    _COMMON
    + _CARRIED
    + """
return carried(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
"""
)


def _import_redis() -> Any:
    try:
        import redis  # noqa: PLC0415 - optional: only this store needs it
    except ImportError as exc:
        raise ImportError(_INSTALL) from exc
    return redis


def _check_part(what: str, value: str) -> None:
    if "{" in value or "}" in value:
        raise ValueError(f"a Redis store's {what} may not contain '{{' or '}}': {value!r}")


class RedisStore(Store):
    """A :class:`keypolicy.core.store.Store` in Redis, shared by every process that uses the
    same Redis, prefix and ``namespace`` (see the module's docstring for the design).

    Thread-safe (each call takes an idle connection of its own, or opens one); after a fork the
    child opens its own connections. Build one with :meth:`from_url`, or hand it a
    ``redis.Redis`` client of your own: its connection pool's settings make the store's
    connections (set its timeouts and retries yourself then: see :meth:`from_url` for what this
    store chooses).
    """

    def __init__(
        self,
        client: Redis,
        *,
        namespace: str = "default",
        prefix: str = DEFAULT_PREFIX,
        expiry_margin: float = EXPIRY_MARGIN_S,
        describe: str | None = None,
    ) -> None:
        redis = _import_redis()
        if not namespace:
            raise ValueError("a Redis store's namespace may not be empty")
        _check_part("namespace", namespace)
        _check_part("prefix", prefix)
        if not expiry_margin >= 0:
            raise ValueError(f"expiry_margin must be a number of seconds >= 0, not {expiry_margin}")
        self._client = client
        self.namespace = namespace
        self.prefix = prefix
        self._base = f"{prefix}{{{namespace}}}:"
        self._where = describe if describe is not None else _describe(client)
        self._secrets: list[str] = []
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._reply_error: type[Exception] = redis.ResponseError
        self._no_script: type[Exception] = redis.exceptions.NoScriptError
        self._pool = client.connection_pool
        self._free: list[Any] = []  # idle connections of this process
        self._made: list[Any] = []  # every connection this process made (to close them)
        self._pid = os.getpid()
        self._acquire: Script = client.register_script(_ACQUIRE)
        self._adjust: Script = client.register_script(_ADJUST)
        self._clamp: Script = client.register_script(_CLAMP)
        self._levels: Script = client.register_script(_LEVELS)
        self._set_cooldown: Script = client.register_script(_SET_COOLDOWN)
        self._claim: Script = client.register_script(_CLAIM)
        self._acquire_leased: Script = client.register_script(_ACQUIRE_LEASED)
        self._settle_lease: Script = client.register_script(_SETTLE_LEASE)
        self._reap: Script = client.register_script(_REAP)
        self._apply: Script = client.register_script(_APPLY)
        self._expiry = (repr(float(expiry_margin)), repr(STILL_TTL_S), repr(LONGEST_TTL_S))
        self._margin = float(expiry_margin)
        self._keys: dict[str, str] = {}
        self._latest = -math.inf  # the latest ``now`` handed to this store (cooldowns' expiry)
        # Corrections held back (adjust_later, clamp_later): their keys, and their arguments as
        # the scripts' ``carried`` reads them; sent with the next call.
        self._held_keys: list[str] = []
        self._held_args: list[str] = []
        self._held_lock = threading.Lock()
        # The cooldowns read (name -> end), valid while the namespace's cooldown generation
        # (``_gen_key``: a token set anew whenever a cooldown changes) is the one they were read
        # at (``_cool_gen``) and the latest any reply showed (``_seen_gen``). None: not read.
        self._gen_key = f"{self._base}cooldown-gen"
        self._cool: dict[str, float] = {}
        self._cool_gen: str | None = None
        self._seen_gen: str | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "default",
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        expiry_margin: float = EXPIRY_MARGIN_S,
    ) -> RedisStore:
        """A store on the Redis at ``url`` (``redis://[[user]:password@]host[:port][/db]``,
        ``rediss://`` for TLS, ``unix:///path/to/socket?db=0``).

        ``timeout``: seconds a call waits for an answer; ``connect_timeout``: for a connection to
        be made (both 0.5 s by default: a call fails within about their sum, never hangs). No
        call is retried (see the module's docstring); RESP2. Options in the URL's query
        (``?socket_timeout=2``) win over these, as redis-py has it. Connects lazily: a Redis that
        is down shows at the first call, as :class:`keypolicy.state.StoreUnavailable`.
        """
        redis = _import_redis()
        from redis.backoff import NoBackoff  # noqa: PLC0415 - optional dependency
        from redis.retry import Retry  # noqa: PLC0415

        shown = urls.mask_url(url)
        urls.check_userinfo(url)
        try:
            client = redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=connect_timeout,
                retry=Retry(NoBackoff(), 0),
                decode_responses=True,
                protocol=2,
            )
        except ValueError as exc:  # a URL redis-py cannot read
            raise ValueError(f"cannot use the Redis URL {shown}: {_scrub(str(exc), url)}") from None
        store = cls(
            client, namespace=namespace, prefix=prefix, expiry_margin=expiry_margin, describe=shown
        )
        store._secrets = urls.url_passwords(url)
        return store

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, namespace={self.namespace!r})"

    def close(self) -> None:
        """Close the store's connections (a later call opens new ones)."""
        made, self._made, self._free = self._made, [], []
        for connection in made:
            connection.disconnect()
        self._client.close()

    # ------------------------------------------------------------------ keys

    def bucket_key(self, name: str) -> str:
        """The Redis key holding bucket ``name``: ``PREFIX{NAMESPACE}:bucket:NAME``."""
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = f"{self._base}bucket:{name}"
        return key

    def cooldown_key(self, name: str) -> str:
        """The Redis key holding ``name``'s cooldown: ``PREFIX{NAMESPACE}:cooldown:NAME``."""
        return f"{self._base}cooldown:{name}"

    def claim_key(self, name: str) -> str:
        """The Redis key holding claim ``name``: ``PREFIX{NAMESPACE}:claim:NAME``."""
        return f"{self._base}claim:{name}"

    def lease_key(self, lease: str) -> str:
        """The Redis key holding lease ``lease``'s record: ``PREFIX{NAMESPACE}:lease:ID``."""
        return f"{self._base}lease:{lease}"

    def leases_key(self) -> str:
        """The sorted set of open leases, scored by when each ends: ``...:leases``."""
        return f"{self._base}leases"

    def key_pattern(self) -> str:
        """A ``SCAN MATCH`` pattern for every key of this store's namespace."""
        return f"{self._base}*"

    # ------------------------------------------------------------------ the interface

    def acquire(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
    ) -> float:
        """See :meth:`keypolicy.core.store.Store.acquire`: one script, all or nothing."""
        if not len(buckets) == len(amounts) == len(floors):
            raise ValueError("acquire needs one amount and one floor per bucket")
        if now > self._latest:  # noqa: PLR1730 (cheaper than max())
            self._latest = now
        if not buckets:
            return 0.0
        args = [repr(float(now)), *self._expiry]
        for bucket, amount, floor in zip(buckets, amounts, floors, strict=True):
            args += (
                repr(float(bucket.capacity)),
                repr(float(bucket.rate)),
                repr(float(amount)),
                repr(float(floor)),
            )
        keys = [self.bucket_key(b.name) for b in buckets]
        keys.append(self._gen_key)
        wait, gen = self._run(self._acquire, keys, args, "acquire", carry=True)
        self._seen_gen = _text(gen)
        return float(wait)

    def adjust(self, bucket: BucketRef, delta: float, now: float) -> float:
        """See :meth:`keypolicy.core.store.Store.adjust`."""
        return float(self._one(self._adjust, bucket, delta, now, "adjust"))

    def clamp(self, bucket: BucketRef, level: float, now: float) -> None:
        """See :meth:`keypolicy.core.store.Store.clamp`."""
        self._one(self._clamp, bucket, level, now, "clamp")

    def levels(self, buckets: Sequence[BucketRef], now: float) -> list[float]:
        """See :meth:`keypolicy.core.store.Store.levels`. Reading changes nothing."""
        if now > self._latest:  # noqa: PLR1730 (cheaper than max())
            self._latest = now
        if not buckets:
            return []
        args = [repr(float(now))]
        for bucket in buckets:
            args += (repr(float(bucket.capacity)), repr(float(bucket.rate)))
        keys = [self.bucket_key(b.name) for b in buckets]
        return [float(x) for x in self._run(self._levels, keys, args, "read levels")]

    def set_cooldown(self, name: str, until: float) -> None:
        """See :meth:`keypolicy.core.store.Store.set_cooldown`: keeps the later, atomically;
        a change also sets the namespace's cooldown generation anew (so every replica's cached
        cooldowns go stale)."""
        if self._latest > -math.inf:
            left = until - self._latest
            secs = (left if left > 0 else 0.0) + self._margin
            if not secs < LONGEST_TTL_S:
                secs = LONGEST_TTL_S
        else:
            secs = STILL_TTL_S
        ms = max(1, math.ceil(secs * 1000))
        gen = uuid.uuid4().hex
        keys = [self.cooldown_key(name), self._gen_key]
        args = [repr(float(until)), str(ms), gen, str(_ms(LONGEST_TTL_S))]
        before, changed = self._run(self._set_cooldown, keys, args, "set a cooldown")
        if not int(changed):
            return
        if self._cool_gen is not None and _text(before) == self._cool_gen:
            # Nobody changed a cooldown since they were read: the cache stays whole.
            ended = self._cool.get(name, 0.0)
            self._cool[name] = until if until > ended else ended
            self._cool_gen = gen
        self._seen_gen = gen

    def cooldown(self, name: str) -> float:
        """See :meth:`keypolicy.core.store.Store.cooldown` (and :meth:`cooldowns`)."""
        return self.cooldowns((name,))[0]

    def cooldowns(self, names: Sequence[str]) -> list[float]:
        """See :meth:`keypolicy.core.store.Store.cooldowns`: no round trip while the cooldowns
        read before are still current, else one ``MGET`` (with the generation).

        Current means: the namespace's cooldown generation is the one they were read at, as of
        this store's latest reply that shows it (every ``acquire`` does; a cooldown this store
        sets itself is written into them). So an admission sees a cooldown another replica set
        once this replica's next call has come back after it: at most one call late.
        """
        if not names:
            return []
        cache = self._cool
        if self._cool_gen is not None and self._cool_gen == self._seen_gen:
            try:
                return [cache[name] for name in names]
            except KeyError:
                pass
        try:
            values = self._execute(
                "MGET", *[self.cooldown_key(name) for name in names], self._gen_key
            )
        except self._errors as exc:
            raise self._unavailable("read cooldowns", exc) from None
        gen = _text(values[-1]) if values[-1] is not None else ""
        if gen != self._cool_gen:
            cache.clear()
        ends = [0.0 if value is None else float(value) for value in values[:-1]]
        for name, end in zip(names, ends, strict=True):
            cache[name] = end
        self._cool_gen = self._seen_gen = gen
        return ends

    def exclusive(self) -> bool:
        """See :meth:`keypolicy.core.store.Store.exclusive`: other replicas change it too."""
        return False

    def adjust_later(self, bucket: BucketRef, delta: float, now: float) -> None:
        """See :meth:`keypolicy.core.store.Store.adjust_later`: held back, and carried by the
        next call (``acquire``, ``acquire_leased`` and ``settle_lease`` carry it in their own
        script; any other call sends it first)."""
        self._hold("a", bucket, delta, now)

    def clamp_later(self, bucket: BucketRef, level: float, now: float) -> None:
        """See :meth:`keypolicy.core.store.Store.clamp_later`: held back as ``adjust_later``."""
        self._hold("c", bucket, level, now)

    def flush(self) -> None:
        """See :meth:`keypolicy.core.store.Store.flush`: one script, if anything is held."""
        if self._held_keys:
            self._run(self._apply, [], list(self._expiry), "apply corrections", carry=True)

    def claim(self, name: str, until: float, now: float) -> bool:
        """See :meth:`keypolicy.core.store.Store.claim`: one script (not ``SET NX PX``, whose
        expiry would run on Redis's clock: here a claim stands while the *caller's* ``now`` is
        before ``until``, exactly as in the memory store; the key's time to live, ``until -
        now`` plus the margin, only clears it away)."""
        self._saw(now)
        left = until - now
        ms = _ms((left if left > 0 else 0.0) + self._margin)
        args = [repr(float(until)), repr(float(now)), str(ms)]
        return bool(self._run(self._claim, [self.claim_key(name)], args, "claim"))

    def acquire_leased(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
        leased: int,
        until: float,
    ) -> tuple[float, str]:
        """See :meth:`keypolicy.core.store.Store.acquire_leased`: one script. The lease's
        record lives until ``until`` plus ``STILL_TTL_S`` (a reaper may come late: the budgets'
        buckets live that long too); its ID comes from a counter of the namespace."""
        if not len(buckets) == len(amounts) == len(floors):
            raise ValueError("acquire needs one amount and one floor per bucket")
        if leased >= len(buckets):
            return self.acquire(buckets, amounts, floors, now), ""
        self._saw(now)
        args = [repr(float(now)), *self._expiry]
        for bucket, amount, floor in zip(buckets, amounts, floors, strict=True):
            args += (
                repr(float(bucket.capacity)),
                repr(float(bucket.rate)),
                repr(float(amount)),
                repr(float(floor)),
            )
        left = until - now
        ttl = _ms((left if left > 0 else 0.0) + STILL_TTL_S)
        args += (str(max(leased, 0)), repr(float(until)), str(ttl), self.lease_key(""))
        keys = [self.bucket_key(b.name) for b in buckets]
        keys += (self.leases_key(), f"{self._base}lease-seq", self._gen_key)
        wait, lease, gen = self._run(self._acquire_leased, keys, args, "acquire", carry=True)
        self._seen_gen = _text(gen)
        return float(wait), _text(lease)

    def settle_lease(
        self,
        lease: str,
        buckets: Sequence[BucketRef],
        held: Sequence[float],
        kept: Sequence[float],
        now: float,
    ) -> list[float]:
        """See :meth:`keypolicy.core.store.Store.settle_lease`: one script."""
        if not len(buckets) == len(held) == len(kept):
            raise ValueError("settle_lease needs one held and one kept amount per bucket")
        self._saw(now)
        args = [repr(float(now)), *self._expiry, lease]
        for bucket, h, k in zip(buckets, held, kept, strict=True):
            args += (
                repr(float(bucket.capacity)),
                repr(float(bucket.rate)),
                repr(float(h)),
                repr(float(k)),
            )
        keys = [self.leases_key(), self.lease_key(lease)]
        keys += [self.bucket_key(b.name) for b in buckets]
        got = self._run(self._settle_lease, keys, args, "settle a lease", carry=True)
        return [float(x) for x in got]

    def reap(self, now: float, most: int) -> int:
        """See :meth:`keypolicy.core.store.Store.reap`: one script; two reapers at once return
        each lease once (the script is atomic: the second finds it gone)."""
        self._saw(now)
        if most <= 0:
            return 0
        args = [repr(float(now)), *self._expiry, str(most), self.lease_key("")]
        return int(self._run(self._reap, [self.leases_key()], args, "reap leases"))

    def server_time(self) -> tuple[int, int]:
        """Redis's ``TIME``: whole seconds and microseconds since the epoch, on its clock
        (read by :func:`clock_offset` only: no decision uses it)."""
        try:
            seconds, micros = self._execute("TIME")
        except self._errors as exc:
            raise self._unavailable("read its clock", exc) from None
        return int(seconds), int(micros)

    # ------------------------------------------------------------------ calls

    def _saw(self, now: float) -> None:
        if now > self._latest:  # noqa: PLR1730 (cheaper than max())
            self._latest = now

    def _one(self, script: Script, bucket: BucketRef, value: float, now: float, doing: str) -> Any:
        if now > self._latest:  # noqa: PLR1730 (cheaper than max())
            self._latest = now
        args = [
            repr(float(now)),
            *self._expiry,
            repr(float(bucket.capacity)),
            repr(float(bucket.rate)),
            repr(float(value)),
        ]
        return self._run(script, [self.bucket_key(bucket.name)], args, doing)

    def _hold(self, kind: str, bucket: BucketRef, value: float, now: float) -> None:
        if now > self._latest:  # noqa: PLR1730 (cheaper than max())
            self._latest = now
        with self._held_lock:
            self._held_keys.append(self.bucket_key(bucket.name))
            self._held_args += (
                kind,
                repr(float(now)),
                repr(float(bucket.capacity)),
                repr(float(bucket.rate)),
                repr(float(value)),
            )

    def _run(
        self, script: Script, keys: list[str], args: list[str], doing: str, carry: bool = False
    ) -> Any:
        """``EVALSHA``; on ``NOSCRIPT`` (a restarted or flushed Redis: the script did not run),
        load it and run it again. ``carry``: the script applies the corrections held back first
        (they are appended to ``keys`` and ``args``); else any held are sent first, on their
        own. Either way they are sent once: lost if that call fails."""
        if carry:
            with self._held_lock:
                held_keys, held_args = self._held_keys, self._held_args
                self._held_keys, self._held_args = [], []
            keys += held_keys
            args += held_args
            args.append(str(len(held_keys)))
        elif self._held_keys:
            self.flush()
        try:
            try:
                return self._execute("EVALSHA", script.sha, len(keys), *keys, *args)
            except self._no_script:
                self._execute("SCRIPT", "LOAD", script.script)
                return self._execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except self._errors as exc:
            raise self._unavailable(doing, exc) from None

    def _execute(self, *command: Any) -> Any:
        """One command, one round trip, on an idle connection of this process.

        redis-py's connections, without the client's and the pool's machinery around each
        command (retries, observability, locks: about half the client's CPU per call, measured
        by benchmarks/redis_state.py). A connection the server closed meanwhile (a restart) is
        found before sending and opened again; one that failed mid-command is dropped, so no late
        answer is ever read as the next command's. Safe from several threads (each call takes a
        connection of its own off the idle list) and across fork (a child opens its own).
        """
        if self._pid != os.getpid():  # a forked child: the parent's connections are not ours
            self._pid, self._free, self._made = os.getpid(), [], []
        try:
            connection = self._free.pop()
        except IndexError:
            pool = self._pool
            connection = pool.connection_class(**pool.connection_kwargs)
            self._made.append(connection)
        try:
            if getattr(connection, "_sock", None) is not None:
                try:
                    stale = connection.can_read()  # an open connection has nothing to read
                except (self._errors[0], OSError):
                    stale = True
                if stale:
                    connection.disconnect()  # sending connects again
            connection.send_command(*command)
            reply = connection.read_response()
        except self._reply_error:
            self._free.append(connection)  # an error answer: the connection is fine
            raise
        except BaseException:
            connection.disconnect()
            self._free.append(connection)
            raise
        self._free.append(connection)
        return reply

    def _unavailable(self, doing: str, exc: BaseException) -> StoreUnavailable:
        """The one error a failed call raises; no password in it (nor chained to it)."""
        text = f"{type(exc).__name__}: {exc}"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return StoreUnavailable(f"the Redis store at {self._where} could not {doing}: {text}")


class ClockOffset(NamedTuple):
    """How far Redis's clock is ahead of the caller's (``offset``, seconds; negative: behind),
    give or take half the round trip ``rtt`` (seconds), from ``samples`` readings."""

    offset: float
    rtt: float
    samples: int


def clock_offset(
    store: RedisStore, samples: int = 7, clock: Callable[[], float] = time.time
) -> ClockOffset:
    """Measure the offset between the caller's wall ``clock`` and the Redis server's ``TIME``.

    Each sample reads ``clock`` just before and just after one ``TIME`` round trip and takes
    Redis's reading to be of the moment halfway between (so the round trip is compensated: the
    error of one sample is at most half its round trip); the median of the samples' offsets is
    the answer, and the median round trip says how precise it is. The first sample, which may
    open the connection, is not counted. Raises :class:`keypolicy.state.StoreUnavailable` if
    Redis does not answer.

    Why it matters. The store never reads Redis's clock: every call carries the caller's time,
    so replicas agree only as far as their clocks do. Each bucket keeps the latest time any
    replica brought it up to date, and refills nothing for a caller whose time is earlier; so a
    replica whose clock is ``s`` seconds ahead refills the buckets it touches ``s`` seconds
    early: it may take up to ``s × rate`` units more than the limit allows at that moment
    (50 ms on a 10,000-requests-a-minute limit: about 8 requests), once, not cumulatively (the
    buckets then run on its clock, and the others see no refill until theirs catch up: they
    wait up to ``s`` longer). A calendar budget's period, a cooldown, a claim and a lease end
    ``s`` early or late on that replica. Keys' expiry (``expiry_margin``, 60 s) absorbs far
    more than any sane skew. Comparing each replica to Redis's one clock bounds the skew
    between any two replicas by the sum of their offsets.
    """
    if samples < 1:
        raise ValueError("clock_offset needs at least one sample")
    offsets: list[float] = []
    trips: list[float] = []
    for i in range(samples + 1):
        before = clock()
        seconds, micros = store.server_time()
        after = clock()
        if i == 0:
            continue  # may have opened the connection: its round trip says nothing
        offsets.append(seconds + micros / 1e6 - (before + after) / 2)
        trips.append(after - before)
    return ClockOffset(statistics.median(offsets), statistics.median(trips), samples)


def _text(value: Any) -> str:
    """A script's reply as text (redis-py gives bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(secs: float) -> int:
    """A time to live in whole milliseconds: at least 1, at most ``LONGEST_TTL_S``."""
    if not secs < LONGEST_TTL_S:
        secs = LONGEST_TTL_S
    return max(1, math.ceil(secs * 1000))


def _scrub(text: str, url: str) -> str:
    for secret in urls.url_passwords(url):
        text = text.replace(secret, "***")
    return text


def _describe(client: Redis) -> str:
    """Where ``client`` connects, without its password."""
    try:
        kw = client.connection_pool.connection_kwargs
    except AttributeError:
        return type(client).__name__
    if kw.get("path"):
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    return f"redis://{kw.get('host', '?')}:{kw.get('port', '?')}/{kw.get('db', 0)}"

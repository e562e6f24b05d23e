"""Switchboard — Python binding of the call-routing engine.

A thin layer over ``libswitchboard.so`` with :mod:`ctypes` from the standard
library: no compiler is needed to install or use it. Every method mirrors a
function of ``switchboard.h`` (the manual of the engine); values go in and
come out as plain Python values:

- documents (accounts, agents, queues, memberships) go in as dicts (or JSON
  text) and come out as dicts and lists;
- events go in as dicts or keyword arguments, shaped like
  ``sb_submit_json``'s JSON;
- the actions an event or a tick caused come out as a list of dicts, the
  same shape as ``sb_result_json`` and the daemon's action stream:
  ``{"type": "ring", "account": "acme", "call": "c1", "agent": "alice",
  "device": "softphone", "uri": "sip:alice@pbx.example", "queue": "support",
  "timeout": 20, "attempt": 1}`` (keys whose value is absent are left out);
- failures raise :class:`SwitchboardError` (a subclass per code, such as
  :class:`NotFoundError`) carrying the code's name, number, the engine's
  message and the offending field.

The shared library is found through the ``SWITCHBOARD_LIB`` environment
variable (a path), else ``build/libswitchboard.so`` of the source tree this
package sits in, else ``PREFIX/lib`` when ``make install`` put the package in
``PREFIX/lib/pythonX.Y/dist-packages``, else the system's library path.

An :class:`Engine` may be used by several threads at once (each thread gets
its own result buffer, freed when the thread ends; the GIL is released while
the engine works). :meth:`Engine.close` waits for the calls in flight.
"""

import collections
import ctypes
import ctypes.util
import json
import operator
import os
import sys
import threading
import time
import traceback

__all__ = [
    "Engine", "SwitchboardError", "InvalidError", "NotFoundError", "ExistsError",
    "StateError", "PolicyError", "FullError", "StoreError", "OutOfMemoryError",
    "BusyError", "AuthError", "LimitError", "CryptoError", "VersionError", "HoldError",
    "version", "strerror", "code_name", "redact", "policy_check", "policy_test", "policy_keygen",
    "policy_sign", "policy_verify", "master_key_rotate", "load_library", "library_path",
    "defer_stop_signals",
]

__version__ = "0.2.0"

# --------------------------------------------------------------------------
# Error codes (switchboard.h: SB_E*).

OK = 0
EINVAL = -32000
ENOTFOUND = -32001
EEXIST = -32002
ESTATE = -32003
EPOLICY = -32004
EFULL = -32005
ESTORE = -32006
ENOMEM = -32007
EBUSY = -32008
EAUTH = -32009
ELIMIT = -32010
ECRYPTO = -32011
EVERSION = -32012
EHOLD = -32013

_CODE_NAMES = {
    EINVAL: "SB_EINVAL", ENOTFOUND: "SB_ENOTFOUND", EEXIST: "SB_EEXIST",
    ESTATE: "SB_ESTATE", EPOLICY: "SB_EPOLICY", EFULL: "SB_EFULL", ESTORE: "SB_ESTORE",
    ENOMEM: "SB_ENOMEM", EBUSY: "SB_EBUSY", EAUTH: "SB_EAUTH", ELIMIT: "SB_ELIMIT",
    ECRYPTO: "SB_ECRYPTO", EVERSION: "SB_EVERSION", EHOLD: "SB_EHOLD",
}


class SwitchboardError(Exception):
    """A failure reported by the engine.

    Attributes: ``name`` (``"SB_ENOTFOUND"``), ``code`` (the negative number),
    ``message`` (the engine's message; policy errors carry ``file:line``)
    and ``field`` (the offending input field, e.g. ``"devices.mobile"``, or
    None). Catch a subclass (:class:`NotFoundError`...) for one code.
    ``actions``: what the failed call did all the same, as a list of action
    dicts, most often empty: an event or a tick whose sync failed after it
    committed (:class:`StoreError`, "sync: ...") stands, and these are its
    actions, to apply as on success (switchboard.h, sb_submit and sb_tick).
    """

    def __init__(self, name, code, message, field=None):
        super().__init__(name, code, message, field)
        self.name = name
        self.code = code
        self.message = message
        self.field = field
        self.actions = []

    def __str__(self):
        s = "%s: %s" % (self.name, self.message or "error")
        if self.field:
            s += " (field %s)" % self.field
        return s


class InvalidError(SwitchboardError):
    """SB_EINVAL: bad argument or malformed input; see ``field``."""


class NotFoundError(SwitchboardError):
    """SB_ENOTFOUND: no such account, agent, queue, call or policy."""


class ExistsError(SwitchboardError):
    """SB_EEXIST: already exists (a call id offered twice)."""


class StateError(SwitchboardError):
    """SB_ESTATE: not valid in the current state."""


class PolicyError(SwitchboardError):
    """SB_EPOLICY: a policy failed to compile, load or validate.

    ``problems`` lists the ``file:line: message`` lines of the message."""

    @property
    def problems(self):
        return [l for l in (self.message or "").splitlines() if l]


class FullError(SwitchboardError):
    """SB_EFULL: the LMDB map or the disk is full; nothing was written."""


class StoreError(SwitchboardError):
    """SB_ESTORE: storage error (I/O, corrupt record)."""


class OutOfMemoryError(SwitchboardError):
    """SB_ENOMEM: out of memory; nothing was written."""


class BusyError(SwitchboardError):
    """SB_EBUSY: another backup is being written to the same place."""


class AuthError(SwitchboardError):
    """SB_EAUTH: credentials did not verify."""


class LimitError(SwitchboardError):
    """SB_ELIMIT: a configured limit was reached."""


class CryptoError(SwitchboardError):
    """SB_ECRYPTO: a key file or sealed data could not be used."""


class VersionError(SwitchboardError):
    """SB_EVERSION: the data directory was written by a newer format."""


class HoldError(SwitchboardError):
    """SB_EHOLD: a legal hold prevents the operation."""


_ERROR_CLASSES = {
    EINVAL: InvalidError, ENOTFOUND: NotFoundError, EEXIST: ExistsError,
    ESTATE: StateError, EPOLICY: PolicyError, EFULL: FullError, ESTORE: StoreError,
    ENOMEM: OutOfMemoryError, EBUSY: BusyError, EAUTH: AuthError, ELIMIT: LimitError,
    ECRYPTO: CryptoError, EVERSION: VersionError, EHOLD: HoldError,
}


def _error(code, message, field=None):
    cls = _ERROR_CLASSES.get(code, SwitchboardError)
    return cls(_CODE_NAMES.get(code, "SB_E?"), code, message, field)


# --------------------------------------------------------------------------
# The C structures this binding reads or fills. They must match switchboard.h
# field for field (test_binding.t compares them with the compiler's layout).

_CLOCK_FN = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)
_LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
_PROGRESS_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64)

_CONFIG_VERSION = 1


class _Config(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint),
        ("data_dir", ctypes.c_char_p),
        ("sync", ctypes.c_int),
        ("map_size", ctypes.c_size_t),
        ("map_max", ctypes.c_size_t),
        ("policy_dir", ctypes.c_char_p),
        ("key_file", ctypes.c_char_p),
        ("clock", _CLOCK_FN),
        ("clock_arg", ctypes.c_void_p),
        ("log", _LOG_FN),
        ("log_arg", ctypes.c_void_p),
        ("log_level", ctypes.c_int),
        ("seed", ctypes.c_uint64),
        ("policy_instructions", ctypes.c_uint64),
        ("policy_wall_ms", ctypes.c_uint32),
        ("erasure_journal_days", ctypes.c_uint32),  # in what was padding
        ("policy_memory", ctypes.c_size_t),
        ("quarantine_after", ctypes.c_uint32),
        ("require_signed_policies", ctypes.c_int),
        ("policy_public_key", ctypes.c_char_p),
    ]


class _Action(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("account", ctypes.c_char_p),
        ("call_id", ctypes.c_char_p),
        ("agent_id", ctypes.c_char_p),
        ("device", ctypes.c_char_p),
        ("uri", ctypes.c_char_p),
        ("queue_id", ctypes.c_char_p),
        ("reason", ctypes.c_char_p),
        ("status", ctypes.c_char_p),
        ("timeout_s", ctypes.c_int),
        ("due_ms", ctypes.c_int64),
        ("attempt", ctypes.c_uint32),
    ]


_ACTION_TYPES = (None, "ring", "cancel", "connect", "reject", "overflow", "wait", "end",
                 "agent")
_SYNC_MODES = {"group": 0, "sync": 1, "none": 2, "defer": 3}
_EXPORT_FORMATS = {"json": 0, "csv": 1}  # sb_export_format
_LOG_LEVELS = {"error": 0, "warn": 1, "info": 2, "debug": 3}
_LOG_NAMES = ("error", "warn", "info", "debug")
_INT64_MAX = (1 << 63) - 1
_SIZE_BITS = 8 * ctypes.sizeof(ctypes.c_size_t)

# --------------------------------------------------------------------------
# Loading the shared library.

_lib = None
_lib_path = None
_lib_lock = threading.Lock()


def library_path():
    """The path or name the shared library is (or would be) loaded from."""
    if _lib_path:
        return _lib_path
    env = os.environ.get("SWITCHBOARD_LIB")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    up3 = os.path.join(here, os.pardir, os.pardir, os.pardir)
    for cand in (
            # the source tree: bindings/python/switchboard -> build/
            os.path.join(up3, "build", "libswitchboard.so"),
            # make install: PREFIX/lib/pythonX.Y/dist-packages/switchboard -> PREFIX/lib
            os.path.join(up3, "libswitchboard.so.1")):
        cand = os.path.normpath(cand)
        if os.path.exists(cand):
            return cand
    return ctypes.util.find_library("switchboard") or "libswitchboard.so.1"


def _declare(lib):
    c_char_p, c_int, c_size_t, c_void_p = (ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t,
                                            ctypes.c_void_p)
    E, R = c_void_p, c_void_p  # sb_engine *, sb_result *
    C = ctypes.POINTER(_Config)
    sigs = {
        "sb_version": (c_char_p, []),
        "sb_strerror": (c_char_p, [c_int]),
        "sb_code_name": (c_char_p, [c_int]),
        "sb_redact": (c_int, [c_char_p, c_void_p, c_size_t]),
        "sb_result_new": (R, []),
        "sb_result_free": (None, [R]),
        "sb_result_code": (c_int, [R]),
        "sb_result_message": (c_char_p, [R]),
        "sb_result_field": (c_char_p, [R]),
        "sb_result_changed": (c_int, [R]),
        "sb_defer_stop_signals": (None, [c_int]),
        "sb_result_count": (c_size_t, [R]),
        "sb_result_action": (c_void_p, [R, c_size_t]),  # read with _Action.from_address
        "sb_result_json": (c_char_p, [R, ctypes.POINTER(c_size_t)]),
        "sb_config_init": (None, [C]),
        "sb_open": (c_int, [ctypes.POINTER(E), C, R]),
        "sb_close": (None, [E]),
        "sb_sync": (c_int, [E]),
        "sb_sync_progress": (c_int, [E, ctypes.POINTER(ctypes.c_uint64),
                                     ctypes.POINTER(ctypes.c_uint64)]),
        "sb_account_put": (c_int, [E, c_char_p, c_size_t, R]),
        "sb_account_get": (c_int, [E, c_char_p, R]),
        "sb_account_list": (c_int, [E, R]),
        "sb_account_delete": (c_int, [E, c_char_p, R]),
        "sb_account_evict": (c_int, [E, c_char_p, R]),
        "sb_agent_put": (c_int, [E, c_char_p, c_char_p, c_size_t, R]),
        "sb_agent_get": (c_int, [E, c_char_p, c_char_p, R]),
        "sb_agent_list": (c_int, [E, c_char_p, R]),
        "sb_agent_list_page": (c_int, [E, c_char_p, c_char_p, c_size_t, R]),
        "sb_agent_delete": (c_int, [E, c_char_p, c_char_p, R]),
        "sb_queue_put": (c_int, [E, c_char_p, c_char_p, c_size_t, R]),
        "sb_queue_get": (c_int, [E, c_char_p, c_char_p, R]),
        "sb_queue_list": (c_int, [E, c_char_p, R]),
        "sb_queue_list_page": (c_int, [E, c_char_p, c_char_p, c_size_t, R]),
        "sb_queue_delete": (c_int, [E, c_char_p, c_char_p, R]),
        "sb_member_put": (c_int, [E, c_char_p, c_char_p, c_char_p, c_char_p, c_size_t, R]),
        "sb_member_delete": (c_int, [E, c_char_p, c_char_p, c_char_p, R]),
        "sb_submit_json": (c_int, [E, c_char_p, c_char_p, c_size_t, R]),
        "sb_batch_begin": (c_int, [E]),
        "sb_batch_end": (c_int, [E, R]),
        "sb_tick": (c_int, [E, R]),
        "sb_tick_for": (c_int, [E, ctypes.c_uint32, ctypes.POINTER(c_int), R]),
        "sb_next_deadline": (ctypes.c_int64, [E]),
        "sb_call_get": (c_int, [E, c_char_p, c_char_p, R]),
        "sb_call_list": (c_int, [E, c_char_p, c_char_p, R]),
        "sb_call_list_page": (c_int, [E, c_char_p, c_char_p, c_char_p, c_size_t, R]),
        "sb_policy_put": (c_int, [E, c_char_p, c_char_p, c_char_p, c_size_t, c_char_p, R]),
        "sb_policy_list": (c_int, [E, c_char_p, R]),
        "sb_policy_get": (c_int, [E, c_char_p, c_char_p, R]),
        "sb_policy_delete": (c_int, [E, c_char_p, c_char_p, R]),
        "sb_policy_put_if": (c_int, [E, c_char_p, c_char_p, c_char_p, c_size_t, c_char_p,
                                     c_char_p, R]),
        "sb_policy_delete_if": (c_int, [E, c_char_p, c_char_p, c_char_p, R]),
        "sb_policy_versions": (c_int, [E, c_char_p, c_char_p, ctypes.c_uint64, c_size_t, R]),
        "sb_policy_version_get": (c_int, [E, c_char_p, c_char_p, c_char_p, R]),
        "sb_policy_versions_forget": (c_int, [E, c_char_p, c_char_p, c_char_p, R]),
        "sb_reload": (c_int, [E, R]),
        "sb_policy_check": (c_int, [c_char_p, c_char_p, c_size_t, R]),
        "sb_policy_test": (c_int, [c_char_p, c_char_p, c_size_t, c_char_p, c_size_t, R]),
        "sb_policy_check_cfg": (c_int, [C, c_char_p, c_char_p, c_size_t, R]),
        "sb_policy_test_cfg": (c_int, [C, c_char_p, c_char_p, c_size_t, c_char_p, c_size_t, R]),
        "sb_policy_keygen": (c_int, [R]),
        "sb_policy_sign": (c_int, [c_char_p, c_size_t, c_char_p, R]),
        "sb_policy_verify": (c_int, [c_char_p, c_size_t, c_char_p, R]),
        "sb_apikey_create": (c_int, [E, c_char_p, R]),
        "sb_apikey_list": (c_int, [E, c_char_p, R]),
        "sb_apikey_verify": (c_int, [E, c_char_p, c_char_p, c_size_t]),
        "sb_apikey_revoke": (c_int, [E, c_char_p, c_char_p, R]),
        "sb_stats": (c_int, [E, R]),
        "sb_records_export": (c_int, [E, c_char_p, c_char_p, c_int, R]),
        "sb_erase": (c_int, [E, c_char_p, c_char_p, R]),
        "sb_records_list": (c_int, [E, c_char_p, c_char_p, c_size_t, R]),
        "sb_hold_place": (c_int, [E, c_char_p, c_char_p, c_size_t, R]),
        "sb_retention_preview": (c_int, [E, c_char_p, c_char_p, c_size_t, R]),
        "sb_hold_release": (c_int, [E, c_char_p, c_char_p, R]),
        "sb_hold_list": (c_int, [E, c_char_p, R]),
        "sb_hold_get": (c_int, [E, c_char_p, c_char_p, R]),
        "sb_aggregates": (c_int, [E, c_char_p, c_char_p, ctypes.c_int64, ctypes.c_int64, R]),
        "sb_audit_list": (c_int, [E, c_char_p, ctypes.c_uint64, c_size_t, R]),
        "sb_sweep": (c_int, [E, ctypes.c_uint32, _PROGRESS_FN, c_void_p, R]),
        "sb_backup": (c_int, [E, c_char_p, R]),
        "sb_master_key_rotate": (c_int, [C, c_char_p, R]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def load_library(path=None):
    """Load (once) and return the engine's shared library.

    ``path`` overrides the search (``SWITCHBOARD_LIB``, the source tree's
    ``build/``, then the system's library path). Raises OSError when the
    library cannot be loaded."""
    global _lib, _lib_path
    with _lib_lock:
        if _lib is not None:
            # One engine library per process: a different path asked for
            # later would otherwise be ignored without a word.
            if path and os.path.realpath(path) != os.path.realpath(_lib_path):
                raise ValueError("switchboard: the engine library is already loaded from %r; "
                                 "one process uses one (asked for %r)" % (_lib_path, path))
            return _lib
        where = path or library_path()
        try:
            lib = ctypes.CDLL(where)
        except OSError as e:
            raise OSError("switchboard: cannot load the engine library %r (%s); build it "
                          "with `make` or set SWITCHBOARD_LIB to libswitchboard.so"
                          % (where, e)) from None
        _declare(lib)
        _lib, _lib_path = lib, where
        return lib


# --------------------------------------------------------------------------
# Helpers shared by the engine and the module-level functions.

def _b(s, what, optional=False):
    """str/bytes -> bytes for a C string. None is refused (TypeError) unless
    ``optional`` (then it is passed as NULL). A NUL byte is refused with
    InvalidError naming the argument: C would read a shorter string."""
    if s is None:
        if optional:
            return None
        raise TypeError("%s must be str or bytes, not None" % what)
    if isinstance(s, str):
        s = _utf8(s, what)
    elif not isinstance(s, bytes):
        raise TypeError("%s must be str or bytes, not %s" % (what, type(s).__name__))
    if b"\0" in s:
        raise InvalidError("SB_EINVAL", EINVAL,
                           "%s holds a NUL byte (a C string would end there)" % what, what)
    return s


def _utf8(s, what):
    """str -> UTF-8 bytes. A str holding a lone surrogate ("\\udcff", as
    os.fsdecode or a "surrogateescape" decoding leaves undecodable bytes) has
    no UTF-8 form: ValueError naming what holds it, for an id, a document, an
    event or any other text alike (encode's UnicodeEncodeError named
    nothing)."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError("%s is not valid text: it holds a lone surrogate (%r at %d), which "
                         "UTF-8 cannot encode" % (what, s[e.start], e.start)) from None


def _bytes(s, what):
    """str/bytes -> bytes for data passed with its length (NUL bytes allowed)."""
    if isinstance(s, str):
        return _utf8(s, what)
    if isinstance(s, bytes):
        return s
    raise TypeError("%s must be str or bytes, not %s" % (what, type(s).__name__))


def _whole(v, bits, what, signed=False):
    """A whole number for a C integer argument of that width: 0 .. 2**bits - 1
    (signed: -2**(bits-1) .. 2**(bits-1) - 1). ctypes would wrap anything
    else silently (-1 as the largest value, 2**32 as 0) or cut a float.
    A float is taken when it is a whole number (milliseconds from
    arithmetic); NaN, infinities and fractions raise ValueError, other types
    (str, None) TypeError."""
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("%s must be a finite number, not %r" % (what, v))
        if not v.is_integer():
            raise ValueError("%s must be a whole number, not %r" % (what, v))
        n = int(v)
    else:
        try:
            n = operator.index(v)
        except TypeError:
            raise TypeError("%s must be an int, not %s" % (what, type(v).__name__)) from None
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= n <= hi:
        raise ValueError("%s must be %d .. %d, not %r" % (what, lo, hi, v))
    return n


_U32_MAX = (1 << 32) - 1
_LOG_KEEP = 256  # lines an engine opened with log="buffer" keeps, as Lua's


def _budget(v, what):
    """A budget of milliseconds for a C uint32_t (sb_tick_for, sb_sweep): a
    whole number from 0, as _whole takes it; one past 2**32 - 1 (about 49.7
    days) counts as that, as in the Lua and Go bindings (ctypes would wrap
    2**32 + 1 to 1 ms)."""
    if isinstance(v, int) and not isinstance(v, bool) and v > _U32_MAX:
        return _U32_MAX
    if isinstance(v, float) and v == v and v != float("inf") and v.is_integer() and v > _U32_MAX:
        return _U32_MAX
    return _whole(v, 32, what)


def _doc(obj, what="document", optional=False):
    """A document (dict/list, or JSON text) -> UTF-8 JSON bytes; None only
    when ``optional`` (then NULL: the engine's defaults)."""
    if obj is None:
        if optional:
            return None
        raise TypeError("%s must be a dict, a list or JSON text, not None" % what)
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, str):
        return _utf8(obj, what)
    if not isinstance(obj, (dict, list, tuple)):
        # 42, 3.5 or True would go out as JSON the engine refuses as
        # "malformed JSON": a wrong type, said as such.
        raise TypeError("%s must be a dict, a list or JSON text, not %s"
                        % (what, type(obj).__name__))
    return _encode(obj, what)


# Compact, without NaN or infinities (not JSON: the engine would refuse them
# as "malformed JSON"), characters as they are: the C accelerator.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _encode(obj, what):
    """A document or an event (a dict, list or tuple) -> UTF-8 JSON bytes,
    the values C cannot take refused naming where they are (as _path names
    it, None for the whole): NaN and infinities and strings holding a lone
    surrogate raise ValueError, as other bad Python values do, a string
    holding a NUL byte InvalidError. The walk runs only when the encoding
    fails or holds an escaped NUL."""
    try:
        data = _dumps(obj).encode("utf-8")
    except UnicodeEncodeError:
        at = _path(obj, lambda v: isinstance(v, str) and not _encodable(v))
        if at is not None:
            _utf8(at[1], at[0] or "the " + what)
        raise
    except ValueError as e:
        at = _path(obj, lambda v: isinstance(v, float) and (v != v or v in _INF))
        if at is None:
            raise ValueError("%s: %s" % (what, e)) from None
        raise ValueError("%s must be a finite number, not %r" % (at[0] or what, at[1])) from None
    _refuse_nul(obj, data, what)
    return data


_INF = (float("inf"), float("-inf"))


def _encodable(v):
    try:
        v.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _path(obj, bad, path="", inside=None):
    """Where in obj (dicts, lists and tuples of values) the first value for
    which bad(value) is true is, and that value: (where, value), where named
    as the Lua and Go bindings name it: "name", "devices.softphone",
    "tags[1]", "attrs.x_header" under path; path for a dict whose key is bad
    (the key the value); None when there is none. A dict or list met again
    inside itself (which json refuses as a circular reference) is not
    walked again."""
    if isinstance(obj, (dict, list, tuple)):
        inside = inside if inside is not None else set()
        if id(obj) in inside:
            return None
        inside.add(id(obj))
        try:
            if isinstance(obj, dict):
                for k, v in obj.items():
                    if bad(k):
                        return path, k
                    at = _path(v, bad, "%s.%s" % (path, k) if path else str(k), inside)
                    if at is not None:
                        return at
            else:
                for i, v in enumerate(obj):
                    at = _path(v, bad, "%s[%d]" % (path, i), inside)
                    if at is not None:
                        return at
        finally:
            inside.discard(id(obj))
    elif bad(obj):
        return path, obj
    return None


def _has_nul(v):
    return isinstance(v, str) and "\0" in v


def _refuse_nul(obj, data, what):
    """Refuse obj, a document or an event encoded as the JSON bytes data,
    when a string in it holds a NUL byte: json writes it as \\u0000, which the
    engine refuses naming no field ("strings may not contain \\u0000 (line 1
    column 29)", of JSON text the caller never wrote). InvalidError naming
    where, as for an id and as the Lua and Go bindings do. (The walk runs only
    when the text holds the escape; a string holding a backslash and "u0000"
    leads it to find nothing.)"""
    if b"\\u0000" not in data:
        return
    at = _path(obj, _has_nul)
    if at is not None:
        raise InvalidError("SB_EINVAL", EINVAL,
                           "%s holds a NUL byte (a C string would end there)"
                           % (at[0] or "the " + what),
                           at[0] or None)


def _merged(doc, fields, what):
    """doc (a dict, or JSON text of an object) with the keyword fields added
    or replacing its keys."""
    if isinstance(doc, (str, bytes)):
        try:
            doc = json.loads(doc)
        except ValueError as e:
            raise InvalidError("SB_EINVAL", EINVAL, "%s is not valid JSON: %s" % (what, e),
                               None) from None
    if not isinstance(doc, dict):
        raise TypeError("%s must be a dict or JSON text of an object to take keyword "
                        "arguments, not %s" % (what, type(doc).__name__))
    return dict(doc, **fields)



def _s(p):
    return None if p is None else p.decode("utf-8", "replace")


def _raise(lib, rc, res):
    field = lib.sb_result_field(res)
    e = _error(rc, _s(lib.sb_result_message(res)) or _s(lib.sb_strerror(rc)), _s(field))
    e.actions = _actions(lib, res)  # what a commit whose sync failed did
    raise e


def _json(lib, res):
    return json.loads(lib.sb_result_json(res, None))


def _actions(lib, res):
    """The result's actions as a list of dicts (the sb_result_json shape)."""
    n = lib.sb_result_count(res)
    if not n:
        return []
    at = lib.sb_result_action
    from_address = _Action.from_address
    out = []
    for i in range(n):
        a = from_address(at(res, i))
        t = a.type
        d = {"type": _ACTION_TYPES[t] if 0 < t < 9 else "unknown"}
        # The engine's ids, device names and statuses are ASCII; URIs and
        # reasons may be any UTF-8.
        v = a.account
        if v is not None:
            d["account"] = v.decode()
        v = a.call_id
        if v is not None:
            d["call"] = v.decode()
        v = a.agent_id
        if v is not None:
            d["agent"] = v.decode()
        v = a.device
        if v is not None:
            d["device"] = v.decode()
        v = a.uri
        if v is not None:
            d["uri"] = v.decode("utf-8", "replace")
        v = a.queue_id
        if v is not None:
            d["queue"] = v.decode()
        v = a.reason
        if v is not None:
            d["reason"] = v.decode("utf-8", "replace")
        v = a.status
        if v is not None:
            d["status"] = v.decode()
        if t == 1:
            d["timeout"] = a.timeout_s
            if a.attempt:
                d["attempt"] = a.attempt
        elif t == 6 and a.due_ms:
            d["due_ms"] = a.due_ms
        out.append(d)
    return out


class _Scratch:
    """A private sb_result for the module-level functions."""

    def __init__(self):
        self.lib = load_library()
        self.res = self.lib.sb_result_new()
        if not self.res:
            raise MemoryError("sb_result_new")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.lib.sb_result_free(self.res)
        self.res = None


# --------------------------------------------------------------------------
# Module-level functions (no engine needed).

def version():
    """Version of the linked library, e.g. ``"0.2.0"``."""
    return _s(load_library().sb_version())


def strerror(code):
    """The static message of a code, e.g. ``"SB_ENOTFOUND: not found"``."""
    return _s(load_library().sb_strerror(_whole(code, 32, "code", signed=True)))


def code_name(code):
    """The code's name, e.g. ``"SB_ENOTFOUND"``: what the result JSON's
    ``"code"`` and an error's ``name`` hold; ``"SB_E?"`` for a number that
    is no code."""
    return _s(load_library().sb_code_name(_whole(code, 32, "code", signed=True)))


def redact(text):
    """``text`` with every phone number in it read ``[number]``, as the
    engine's own log lines and audit reasons are (sb_redact in
    switchboard.h says what counts as a number): for a gateway's log lines.
    A NUL byte in ``text`` is refused (InvalidError)."""
    return _redacted(load_library(), _b(text, "text"))


def defer_stop_signals(on):
    """Switch (``True``) or leave (``False``, the default) the process's
    write transactions running with SIGTSTP, SIGTTIN and SIGTTOU blocked
    in the thread that writes (sb_defer_stop_signals): a Ctrl-Z then stops a
    command-line tool between transactions, not inside one, where it would
    hold the data directory's one writer and every other process's writes
    (a daemon's) would wait until it was continued. For every engine of the
    process, from the next write transaction on; the mask is put back as
    each ends and a stop that came meanwhile takes effect then. In a program
    of several threads, block the three signals in the threads that do not
    write (``signal.pthread_sigmask``). Anything but a bool raises
    TypeError, nothing changed."""
    if not isinstance(on, bool):
        raise TypeError("defer_stop_signals() takes True or False, not %s" % type(on).__name__)
    load_library().sb_defer_stop_signals(1 if on else 0)


def _redacted(lib, t):
    """sb_redact of t (str or bytes holding no NUL byte), as str."""
    if isinstance(t, str):
        t = t.replace("\0", " ").encode("utf-8")
    cap = 3 * len(t) + 1  # the shortest number, "+12", reads as 8 bytes
    buf = ctypes.create_string_buffer(cap)
    lib.sb_redact(t, buf, cap)
    return buf.value.decode("utf-8", "replace")


_BUDGETS = ("policy_instructions", "policy_wall_ms", "policy_memory")


def _set_number(cfg, k, v):
    """cfg.k = v, a whole number the field's own width holds: ctypes would
    wrap -1 or 2**64 silently (policy_instructions=2**64 as 0, which
    switches the budget off); policy_wall_ms and quarantine_after past
    2**32 - 1 as 2**32 - 1."""
    if k in _SATURATING:
        setattr(cfg, k, _budget(v, k))
        return
    width = 8 * ctypes.sizeof(dict(_Config._fields_)[k])
    setattr(cfg, k, _whole(v, width, k))


# The 32-bit bounds of sb_config (milliseconds, failures in a row): past
# 2**32 - 1 they count as that, as in the Lua and Go bindings, where the
# other numbers past their field are refused.
_SATURATING = ("policy_wall_ms", "quarantine_after")


def _budgets(lib, what, budgets):
    """The sb_config the policy tools take (sb_policy_check_cfg...): the
    library's defaults with the budgets given, as Engine takes them; None
    when none is given (the plain function, the same defaults)."""
    for k in budgets:
        if k not in _BUDGETS:
            raise TypeError("%s() got an unexpected keyword argument %r" % (what, k))
    given = {k: v for k, v in budgets.items() if v is not None}
    if not given:
        return None
    cfg = _Config()
    lib.sb_config_init(ctypes.byref(cfg))
    for k, v in given.items():
        _set_number(cfg, k, v)
    return cfg


def policy_check(name, source, **budgets):
    """Compile and lint a policy without an engine.

    Returns None when the policy is clean; raises :class:`PolicyError`
    whose ``problems`` are its ``file:line: message`` lines otherwise.
    The keywords ``policy_instructions``, ``policy_wall_ms`` and
    ``policy_memory`` check it under those budgets (``sb_policy_check_cfg``),
    as Engine takes them (0 switches one off): what a reload or an upload on
    such an engine would find. Left out, the library's defaults."""
    src = _bytes(source, "source")
    with _Scratch() as s:
        cfg, nm = _budgets(s.lib, "policy_check", budgets), _b(name, "name", True)
        if cfg is None:
            rc = s.lib.sb_policy_check(nm, src, len(src), s.res)
        else:
            rc = s.lib.sb_policy_check_cfg(ctypes.byref(cfg), nm, src, len(src), s.res)
        if rc:
            _raise(s.lib, rc, s.res)


def policy_test(name, source, cases, **budgets):
    """Run scenario cases (a list, or JSON text) against a policy.

    Returns the report ``{"passed": N, "failed": N, "cases": [{"name", "ok",
    "got", "expected"}...]}`` whether or not every case passed (check
    ``report["failed"]``); raises :class:`SwitchboardError` when the policy
    or the cases cannot be run at all (a compile error, malformed cases).
    The budget keywords are :func:`policy_check`'s (``sb_policy_test_cfg``)."""
    src, cj = _bytes(source, "source"), _doc(cases, "cases", True)
    with _Scratch() as s:
        cfg, nm = _budgets(s.lib, "policy_test", budgets), _b(name, "name", True)
        cn = len(cj) if cj is not None else 0
        if cfg is None:
            rc = s.lib.sb_policy_test(nm, src, len(src), cj, cn, s.res)
        else:
            rc = s.lib.sb_policy_test_cfg(ctypes.byref(cfg), nm, src, len(src), cj, cn, s.res)
        if rc and s.lib.sb_result_code(s.res):
            _raise(s.lib, rc, s.res)
        return _json(s.lib, s.res)


def policy_keygen():
    """A new Ed25519 key pair: ``{"public_key": hex, "secret_key": hex}``."""
    with _Scratch() as s:
        rc = s.lib.sb_policy_keygen(s.res)
        if rc:
            _raise(s.lib, rc, s.res)
        return _json(s.lib, s.res)


def policy_sign(source, secret_key):
    """``source`` signed with the 128-hex secret key (a ``--@signature``
    line appended, or replaced). Returns str."""
    src = _bytes(source, "source")
    with _Scratch() as s:
        rc = s.lib.sb_policy_sign(src, len(src), _b(secret_key, "secret_key"), s.res)
        if rc:
            _raise(s.lib, rc, s.res)
        return _json(s.lib, s.res)["source"]


def policy_verify(source, public_key):
    """Check that ``source`` carries a valid ``--@signature`` line made with
    the secret key of the 64-hex ``public_key``, as an engine with
    ``require_signed_policies`` does before it loads a policy.

    Returns None when it verifies; raises :class:`PolicyError` (field
    ``signature``) saying why not (unsigned, changed after signing, or not
    signed with that key), :class:`InvalidError` (field ``public_key``)
    for a key that is not 64 hex characters."""
    src = _bytes(source, "source")
    with _Scratch() as s:
        rc = s.lib.sb_policy_verify(src, len(src), _b(public_key, "public_key"), s.res)
        if rc:
            _raise(s.lib, rc, s.res)


def _set_log_level(cfg, log_level):
    """cfg.log_level from a name (``"warn"``) or a number; None keeps the
    default. A C int: a number beyond one would be wrapped by ctypes."""
    if log_level is None:
        return
    if isinstance(log_level, str):
        if log_level not in _LOG_LEVELS:
            raise ValueError("log_level must be one of %s" % ", ".join(_LOG_LEVELS))
        log_level = _LOG_LEVELS[log_level]
    cfg.log_level = _whole(log_level, 32, "log_level", signed=True)


def _log_function(log, modes):
    """The ``log`` argument as a function ``log(level, line)``, or None for
    the engine's own stderr lines: a callable, or one of ``modes`` (the
    caller has made ``"buffer"`` a function already where it takes it)."""
    if log is None or log == "stderr":
        return None
    if log == "none":
        return lambda level, line: None
    if isinstance(log, str) or not callable(log):
        names = ['"%s"' % m for m in modes]
        raise (ValueError if isinstance(log, str) else TypeError)(
            "log must be a callable, %s or %s, not %r" % (", ".join(names[:-1]), names[-1], log))
    return log


def master_key_rotate(data_dir, new_key_file, *, key_file=None, log=None, log_level=None,
                      library=None):
    """Rotate the master key of the data directory ``data_dir``
    (``sb_master_key_rotate``): every account's data key, and the key API
    keys are hashed with, wrapped again under the key in ``new_key_file``,
    which is made (64 hex digits, mode 0600) when it is not there. From then
    on the directory opens only with the new key (``Engine(data_dir,
    key_file=new_key_file)``); every record and API key stays readable and
    valid. The old key (``key_file``, default ``data_dir/master.key``) is
    left as it was: backups made before the rotation open only with it.

    An offline operation: no engine may have the directory open, in this
    process or another (:class:`BusyError`, field ``data_dir``; close every
    :class:`Engine` on it first). Returns the engine's answer as a dict:
    ``data_dir``, ``key_file`` (the new), ``old_key_file``,
    ``new_key_made``, ``accounts`` (data keys wrapped again),
    ``slots_dropped``, ``backups`` (a reminder). Refusals change nothing
    and raise the engine's error: :class:`CryptoError` (field ``key_file``)
    when the old key is not the directory's, :class:`InvalidError` for no
    data in ``data_dir``, no old key, or a ``new_key_file`` that is not a
    valid key, is the old key, or names one of the directory's own files;
    :class:`FullError` or :class:`StoreError` when the new key or data keys
    cannot be written (switchboard.h says which of these still rotated).
    ``log`` and ``log_level`` are :class:`Engine`'s, but for ``"buffer"``;
    ``library`` too."""
    lib = load_library(library)
    cfg = _Config()
    lib.sb_config_init(ctypes.byref(cfg))

    def path(v, what):
        return _b(os.fspath(v) if isinstance(v, os.PathLike) else v, what, True)

    cfg.data_dir = path(data_dir, "data_dir")
    new = path(new_key_file, "new_key_file")
    if key_file is not None:
        cfg.key_file = path(key_file, "key_file")
    _set_log_level(cfg, log_level)
    user_log, raised = _log_function(log, ("stderr", "none")), []
    if user_log is not None:
        def _log_thunk(arg, level, line):
            try:
                user_log(_LOG_NAMES[level] if 0 <= level < 4 else str(level),
                         line.decode("utf-8", "replace"))
            except (KeyboardInterrupt, SystemExit) as e:
                raised.append(e)  # raised when the rotation returns
            except BaseException:  # noqa: BLE001 - printed and ignored, as Engine's
                traceback.print_exc()

        cfg.log = _LOG_FN(_log_thunk)  # referenced by cfg until it goes
    with _Scratch() as s:
        rc = lib.sb_master_key_rotate(ctypes.byref(cfg), new, s.res)
        if raised:
            raise raised[0]
        if rc:
            _raise(lib, rc, s.res)
        doc = _json(lib, s.res)
        doc.pop("actions", None)  # a rotation causes none
        return doc


# --------------------------------------------------------------------------
# The engine.

class _Results:
    """The sb_results an engine hands its threads: one per thread, freed when
    the thread ends (its threading.local entry goes) or the engine closes."""

    def __init__(self, lib):
        self.lib = lib
        self.lock = threading.Lock()
        self.live = set()

    def new(self):
        r = self.lib.sb_result_new()
        if not r:
            raise MemoryError("sb_result_new")
        with self.lock:
            self.live.add(r)
        return _ThreadResult(self, r)

    def release(self, r):
        with self.lock:
            if r not in self.live:
                return  # freed by free_all already
            self.live.discard(r)
        self.lib.sb_result_free(r)

    def free_all(self):
        with self.lock:
            live, self.live = self.live, set()
        for r in live:
            self.lib.sb_result_free(r)


class _ThreadResult:
    """One thread's sb_result; frees it when the thread's local data goes."""

    __slots__ = ("owner", "ptr", "busy")

    def __init__(self, owner, ptr):
        self.owner, self.ptr, self.busy = owner, ptr, False

    def __del__(self):
        # At interpreter exit the main thread drops every thread's local
        # data, also of daemon threads still inside a call with this result:
        # freeing it then crashed them. Kept, the process ends anyway.
        if self.busy:
            return
        try:
            self.owner.release(self.ptr)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _nothing(lib, res):
    return None



# Forks this process has gone through, as seen from the child. An engine is
# its opening process's (LMDB's rule: an environment is not used after
# fork()); in a child, its calls raise and close() only drops the handle.
_forks = 0


def _after_fork_in_child():
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

class _Batch:
    """What :meth:`Engine.batch` returns: ``with`` begins and ends it."""

    __slots__ = ("_eng",)

    def __init__(self, eng):
        self._eng = eng

    def __enter__(self):
        self._eng._batch_begin()
        return self._eng

    def __exit__(self, *exc):
        self._eng._batch_end()
        return False


class Engine:
    """An open engine on a data directory (``sb_open`` / ``sb_close``).

    Keyword arguments mirror ``sb_config``; anything not given keeps the
    library's default (``sb_config_init``):

    ``data_dir``
        the data directory (created mode 0700 if missing). Required.
    ``policy_dir``
        shared/stock policies (``*.lua``), e.g. the source tree's ``policies``.
    ``sync``
        ``"group"`` (default), ``"sync"``, ``"none"`` or ``"defer"`` (then
        call :meth:`sync` before acknowledging).
    ``clock``
        a number of milliseconds: a manual clock starting there, moved by
        :meth:`set_clock` (the Lua binding's ``clock = ms``). Or a callable
        returning milliseconds since the Unix epoch (an int, or
        a float holding a whole number) — the engine's clock for events and
        timers (tests, simulations). It is called from inside the engine's
        calls, must not raise nor call the engine (the call that asked is
        still working), and stays referenced by the engine until
        :meth:`close`. If it raises, or returns something that is not a
        time a C int64 holds, that reading is the system time, and the
        failure is reported: through ``log`` (level ``"error"``, a line
        per failure naming the exception or value, numbers read
        ``[number]``) when one is given, else on stderr, once, without a
        traceback.
    ``log``
        a callable ``log(level, line)``, ``level`` one of ``"error"``,
        ``"warn"``, ``"info"``, ``"debug"``; exceptions it raises are
        printed and ignored. Or, as in the Lua binding, ``"stderr"`` (the
        default: the engine logs to stderr), ``"buffer"`` (the last
        256 lines kept for :meth:`logs`) or ``"none"``.
    ``log_level``
        ``"error"``, ``"warn"``, ``"info"`` (default) or ``"debug"``.
    ``seed``, ``map_size``, ``map_max``, ``key_file``
        as in ``sb_config`` (numbers: ints a C field of that width holds,
        else ValueError; not ints, TypeError).
    ``policy_instructions``, ``policy_wall_ms``, ``policy_memory``, ``quarantine_after``
        the budgets of every policy hook call (0 disables a budget).
    ``require_signed_policies``, ``policy_public_key``
        only load policies signed with this hex Ed25519 key.
    ``erasure_journal_days``
        days after an erasure request came that the erasure journal keeps its
        number's pseudonym, once applied (0, the default: kept for good; at
        most 36600).
    ``library``
        path of ``libswitchboard.so`` (default: see :func:`library_path`).

    Use it as a context manager, or call :meth:`close`.
    """

    _NUMERIC = ("map_size", "map_max", "seed", "policy_instructions", "policy_wall_ms",
                "policy_memory", "quarantine_after", "erasure_journal_days")

    def __init__(self, data_dir, *, policy_dir=None, sync=None, clock=None, log=None,
                 log_level=None, key_file=None, require_signed_policies=None,
                 policy_public_key=None, library=None, **numbers):
        # Set first: close() (from __del__) must work whatever fails below.
        self._eng = None
        self._forks = _forks    # a child of a fork may not use it (see _forks)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._calls = 0         # calls in flight, on every thread
        self._closing = False   # close() waits for the calls in flight
        self._tls = threading.local()  # .res: this thread's result; .depth: its calls;
        #                                .batch: its batch blocks open
        self._batch_lock = threading.Lock()  # held by the thread whose batch is open
        self._results = None
        for k in numbers:
            if k not in self._NUMERIC:
                raise TypeError("Engine() got an unexpected keyword argument %r" % k)
        lib = load_library(library)
        self._lib = lib
        self._results = _Results(lib)

        cfg = _Config()
        lib.sb_config_init(ctypes.byref(cfg))
        if cfg.version != _CONFIG_VERSION:
            raise VersionError("SB_EVERSION", EVERSION,
                               "library config version %d, binding knows %d"
                               % (cfg.version, _CONFIG_VERSION))
        # Keep every buffer handed to sb_open alive as long as the engine.
        self._keep = []

        def cstr(v, what):
            # data_dir None reaches the engine, which names the field.
            b = _b(os.fspath(v) if isinstance(v, os.PathLike) else v, what, True)
            self._keep.append(b)
            return b

        cfg.data_dir = cstr(data_dir, "data_dir")
        if policy_dir is not None:
            cfg.policy_dir = cstr(policy_dir, "policy_dir")
        if key_file is not None:
            cfg.key_file = cstr(key_file, "key_file")
        if policy_public_key is not None:
            cfg.policy_public_key = cstr(policy_public_key, "policy_public_key")
        if require_signed_policies is not None:
            cfg.require_signed_policies = 1 if require_signed_policies else 0
        # sync and log_level are C ints: a number beyond one would be wrapped
        # by ctypes (2**40 as 0, group sync); the engine refuses unknown ones.
        if sync is not None:
            if isinstance(sync, str):
                if sync not in _SYNC_MODES:
                    raise ValueError("sync must be one of %s" % ", ".join(_SYNC_MODES))
                sync = _SYNC_MODES[sync]
            cfg.sync = _whole(sync, 32, "sync", signed=True)
        _set_log_level(cfg, log_level)
        for k, v in numbers.items():
            if v is not None:
                _set_number(cfg, k, v)

        self._log = None
        # log="buffer": the last _LOG_KEEP lines, for logs(), under a lock of
        # their own (the engine calls log from every thread that calls it).
        self._logbuf = collections.deque(maxlen=_LOG_KEEP)
        self._logbuf_lock = threading.Lock()
        if log == "buffer":
            def log(level, line):
                with self._logbuf_lock:
                    self._logbuf.append({"level": level, "message": line})
        user_log = _log_function(log, ("stderr", "buffer", "none"))

        def _emit(level, line):
            # The log function, from inside an engine call on this thread.
            tls = self._tls
            prev = getattr(tls, "in_cb", None)
            try:
                tls.in_cb = "log"
                user_log(level, line)
            except (KeyboardInterrupt, SystemExit) as e:
                tls.pending = e  # raised when the call returns (_leave)
            except BaseException:
                traceback.print_exc()
            finally:
                tls.in_cb = prev

        if user_log is not None:
            def _log_thunk(arg, level, line):
                _emit(_LOG_NAMES[level] if 0 <= level < 4 else str(level),
                      line.decode("utf-8", "replace"))

            self._log = _LOG_FN(_log_thunk)
            cfg.log = self._log

        self._clock = None
        self._clock_py = None
        self._clock_warned = False
        # clock=<ms>: a manual clock starting there, moved by set_clock (as
        # the Lua binding's clock = ms and eng:set_clock).
        self._manual = None
        if isinstance(clock, (int, float)) and not isinstance(clock, bool):
            manual = self._manual = [_whole(clock, 63, "clock")]
            clock = lambda: manual[0]  # noqa: E731 - read by the thunk below
        if clock is not None:
            if not callable(clock):
                raise TypeError("clock must be callable, or a number of milliseconds")
            user_clock = clock

            def _clock_failed(why):
                # The engine's call goes on with the system time; said as the
                # engine says what goes wrong: a log line (numbers redacted,
                # as the engine's are), else stderr once, never a traceback.
                line = _redacted(lib, "the clock function %s; this reading is the "
                                      "system time" % why)
                if user_log is not None:
                    _emit("error", line)
                elif not self._clock_warned:
                    self._clock_warned = True
                    sys.stderr.write("switchboard: %s (said once; give Engine a log "
                                     "function to see each)\n" % line)

            def _clock_thunk(arg):
                tls = self._tls
                try:
                    tls.in_cb = "clock"
                    try:
                        v = user_clock()
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except BaseException as e:  # noqa: BLE001 - reported
                        _clock_failed("raised %s: %s" % (type(e).__name__, e))
                        return int(time.time() * 1000)
                    try:
                        # A value a C int64 cannot hold would be wrapped by
                        # ctypes; one before 1970 dates calls where no query
                        # by time finds them (as the Lua and Go bindings).
                        return _whole(v, 63, "the clock's value")
                    except (TypeError, ValueError) as e:
                        r = repr(v)
                        _clock_failed("returned %s (%s)"
                                      % (r if len(r) <= 40 else r[:37] + "...", e))
                        return int(time.time() * 1000)
                except (KeyboardInterrupt, SystemExit) as e:
                    tls.pending = e  # raised when the call returns (_leave)
                    return int(time.time() * 1000)
                except BaseException:  # noqa: BLE001 - the log function's own
                    return int(time.time() * 1000)
                finally:
                    tls.in_cb = None

            self._clock_py = _clock_thunk
            self._clock = _CLOCK_FN(_clock_thunk)
            cfg.clock = self._clock
        self._cfg = cfg

        eng = ctypes.c_void_p()
        res = self._results.new()
        rc = lib.sb_open(ctypes.byref(eng), ctypes.byref(cfg), res.ptr)
        if rc:
            _raise(lib, rc, res.ptr)
        self._eng = eng
        self._tls.res = res

    # -- lifetime ------------------------------------------------------------

    def close(self):
        """Sync and close the engine (``sb_close``). Idempotent.

        Calls in flight on other threads (a :meth:`sweep` included) are
        waited for; calls made meanwhile raise InvalidError ("the engine is
        closing"), later ones InvalidError ("the engine is closed"). Called
        from inside a call on this engine — from a ``clock``, ``log`` or
        ``progress`` function — it raises StateError and the engine stays
        open: the call that called it still uses the engine."""
        if self._forks != _forks:
            # The parent's engine: not closed here, nor its lock taken (a
            # thread of the parent may have held it at the fork).
            self._eng = None
            return
        tls = self._tls
        if getattr(tls, "depth", 0) or getattr(tls, "closing", False):
            raise StateError("SB_ESTATE", ESTATE,
                             "the engine cannot be closed from inside a call on it (a clock, "
                             "log or progress function): close it after that call returns")
        if getattr(tls, "batch", 0):
            raise StateError("SB_ESTATE", ESTATE,
                             "the engine cannot be closed inside its batch (a `with "
                             "eng.batch()` block of this thread): close it after the block")
        with self._lock:
            if self._eng is None:
                return
            if self._closing:  # another thread closes it: wait for that
                while self._eng is not None:
                    self._idle.wait()
                return
            self._closing = True
            try:
                while self._calls:
                    self._idle.wait()
            except BaseException:
                # Interrupted (Ctrl-C): the engine stays open and usable, and
                # a later close() closes it.
                self._closing = False
                self._idle.notify_all()
                raise
            eng = self._eng
        # Outside the lock: sb_close may log, and a log function may call us.
        tls.closing = True
        try:
            self._lib.sb_close(eng)
        finally:
            tls.closing = False
            with self._lock:
                self._eng = None
                self._closing = False
                self._idle.notify_all()
            self._results.free_all()
            self._tls = threading.local()

    def clock(self):
        """The engine's time, milliseconds since the epoch, as the engine
        takes it: the manual clock's, the ``clock`` function's reading (the
        system time for a reading that fails, reported as for the engine's
        own), or the system time (Lua's ``eng:clock()``). InvalidError on a
        closed engine."""
        self._admit()  # a call on the engine: refused as every other one
        try:
            ms = int(time.time() * 1000) if self._clock_py is None else self._clock_py(None)
        finally:
            self._done()
        tls = self._tls
        exc = getattr(tls, "pending", None)
        if exc is not None and not getattr(tls, "depth", 0):
            tls.pending = None  # Ctrl-C or sys.exit in the clock function
            raise exc
        return ms

    def set_clock(self, ms):
        """Set the manual clock of an engine opened with ``clock=<ms>`` (Lua's
        ``eng:set_clock``): ``ms`` a whole number of milliseconds from 0
        (ValueError otherwise). StateError for an engine with another clock;
        InvalidError on a closed engine."""
        ms = _whole(ms, 63, "ms")
        with self._lock:
            if self._eng is None:
                raise InvalidError("SB_EINVAL", EINVAL, "the engine is closed")
        if self._manual is None:
            raise StateError("SB_ESTATE", ESTATE, "set_clock needs Engine(clock=<ms>), a manual "
                             "clock", "clock")
        self._manual[0] = ms

    def logs(self):
        """The engine's log lines kept since the last call, oldest first (the
        last 256 at most), as ``[{"level": "warn", "message": "..."}, ...]``,
        and forgets them: an engine opened with ``log="buffer"`` (Lua's
        ``eng:logs()``); ``[]`` for the others. InvalidError on a closed
        engine, as every method."""
        with self._lock:
            if self._eng is None:
                raise InvalidError("SB_EINVAL", EINVAL, "the engine is closed")
        with self._logbuf_lock:
            out = list(self._logbuf)
            self._logbuf.clear()
        return out

    @property
    def closed(self):
        return self._eng is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def _admit(self):
        """Count one call in flight and return the engine. Raises
        InvalidError on a closed (or closing) engine, StateError in the
        child of a fork or from a clock or log function."""
        if self._forks != _forks and self._eng is not None:
            raise StateError("SB_ESTATE", ESTATE,
                             "this engine was opened by another process (before a fork): "
                             "open one in this process")
        tls = self._tls
        if getattr(tls, "in_cb", None):
            # The engine is in the middle of a call on this thread, maybe in
            # its write transaction: a call from here could wait for ever,
            # and make every process on the data directory wait.
            raise StateError("SB_ESTATE", ESTATE,
                             "the %s function may not call the engine (it runs inside an "
                             "engine call)" % tls.in_cb)
        with self._lock:
            eng = self._eng
            if eng is None or self._closing:
                raise InvalidError("SB_EINVAL", EINVAL, "the engine is closed"
                                   if eng is None else "the engine is closing")
            self._calls += 1
        return eng

    def _enter(self, need_res=True):
        """Start one call: (engine, result, own) — own is a result to free
        at _leave. Raises as _admit does."""
        eng = self._admit()
        tls = self._tls
        own = res = None
        try:
            depth = getattr(tls, "depth", 0)
            if not depth:
                tls.changed = False  # until the call says otherwise (_note)
            if need_res:
                if depth:
                    # Called from a callback of a call on this thread, whose
                    # result is still in use: a result of its own.
                    own = res = self._lib.sb_result_new()
                    if not res:
                        raise MemoryError("sb_result_new")
                else:
                    r = getattr(tls, "res", None)
                    if r is None:
                        r = tls.res = self._results.new()
                    r.busy = True
                    res = r.ptr
            tls.depth = depth + 1
        except BaseException:
            self._done()
            raise
        return eng, res, own

    def _leave(self, own):
        tls = self._tls
        tls.depth -= 1
        if own:
            self._lib.sb_result_free(own)
        elif not tls.depth:
            r = getattr(tls, "res", None)
            if r is not None:
                r.busy = False
        self._done()
        exc = getattr(tls, "pending", None)
        if exc is not None and not tls.depth:
            # Ctrl-C or sys.exit in a clock or log function: the engine had
            # to go on (it holds its transaction); raised now it is done.
            tls.pending = None
            raise exc

    def _note(self, res):
        """Keep what the call just made with res changed, for changed(): a
        call's own, not one a clock or progress function made inside it."""
        tls = self._tls
        if tls.depth == 1:
            tls.changed = bool(self._lib.sb_result_changed(res))

    def changed(self):
        """Whether the last call this thread made on the engine committed a
        change to the store (sb_result_changed): True for a put, a delete,
        an event or a tick that wrote something; False for a read, for a
        call that found the state already as asked (an agent's status set to
        the one it has, a policy's history forgotten when it has none), and
        for a call that raised (but StoreError from a sync that failed after
        its commit: the change stands). A call refused before it reaches
        the engine (a Python value it cannot take: NaN, a lone surrogate, a
        wrong type) is no call of the engine's: it leaves changed() as the
        call before it left it. Inside :meth:`batch`, each event's
        own (what the batch's commit is to store, and may yet fail to); the
        commit leaves it as the last event left it. With ``sync="defer"``,
        a call that changed nothing has nothing to lose to a sync that
        fails: only one that changed something waits for :meth:`sync`
        before it is acknowledged."""
        return getattr(self._tls, "changed", False)

    def _done(self):
        with self._lock:
            self._calls -= 1
            if not self._calls and self._closing:
                self._idle.notify_all()

    def _do(self, read, fn, *args):
        """fn(engine, *args, result) as one call in flight; raises the
        engine's error, else returns read(lib, result), read before the
        result can be reused or freed."""
        eng, res, own = self._enter()
        try:
            rc = fn(eng, *args, res)
            self._note(res)
            if rc:
                _raise(self._lib, rc, res)
            return read(self._lib, res)
        finally:
            self._leave(own)

    # -- accounts, agents, queues ------------------------------------------------

    def account_put(self, account):
        """Create or replace an account (dict or JSON). Returns the stored
        account with ``"created"``."""
        d = _doc(account, "account")
        return self._do(_json, self._lib.sb_account_put, d, len(d))

    def account_get(self, account):
        return self._do(_json, self._lib.sb_account_get, _b(account, "account"))

    def account_list(self):
        return self._do(_json, self._lib.sb_account_list)["accounts"]

    def account_delete(self, account):
        """Delete the account and everything it owns. StateError while it has
        live calls (waiting, ringing or connected: end them, or use
        :meth:`account_evict`); HoldError while it has legal holds."""
        self._do(_nothing, self._lib.sb_account_delete, _b(account, "account"))

    def account_evict(self, account):
        """Delete the account with its live calls (``sb_account_evict``), for
        an operator removing a tenant whose calls would hold it (where
        :meth:`account_delete` raises StateError). Returns the actions: an
        ``end`` for each live call (``"reason": "account deleted"``, its
        ``queue``), for the gateway that had it; the calls leave no record.
        HoldError while the account has legal holds."""
        return self._do(_actions, self._lib.sb_account_evict, _b(account, "account"))

    def agent_put(self, account, agent):
        """Create or replace an agent (dict or JSON; see switchboard.h for the
        shape). Returns ``{"id", "created", "status", ...}``, with
        ``"actions"`` when the change rang a waiting call."""
        a, d = _b(account, "account"), _doc(agent, "agent")
        return self._do(_json, self._lib.sb_agent_put, a, d, len(d))

    def agent_get(self, account, agent):
        """The agent's document with its live state (``status``, ``stats``...;
        ``next_status`` and ``next_reason`` while a status asked for on a call waits)."""
        return self._do(_json, self._lib.sb_agent_get, _b(account, "account"),
                        _b(agent, "agent"))

    def agent_list(self, account):
        """Every agent of the account, in id order (a list)."""
        return self._do(_json, self._lib.sb_agent_list, _b(account, "account"))["agents"]

    # Pages of the lists (sb_agent_list_page...): the items after the id
    # ``after`` (None or "": from the first), ``limit`` at most (0: all), in
    # id order, and the last id given while more follow (None on the last
    # page): the next page's ``after``.

    def _page(self, key, fn, *args):
        d = self._do(_json, fn, *args)
        return d[key], d.get("next")

    def _pages(self, page, args, limit):
        _whole(limit, _SIZE_BITS, "limit")  # raised at the call, not at the first page

        def pages():
            after = None
            while True:
                items, after = page(*args, after=after, limit=limit)
                yield items
                if after is None:
                    return
        return pages()

    def agent_list_page(self, account, after=None, limit=0):
        """A page of the account's agents, in id order: ``(agents, next)``,
        the agents whose ids come after ``after`` (None or "": from the
        first), ``limit`` at most (0: all), and ``next``, the last id given,
        while more follow (None on the last page): the next page's
        ``after``. InvalidError (field ``after``) for an ``after`` that is
        no id."""
        return self._page("agents", self._lib.sb_agent_list_page, _b(account, "account"),
                          _b(after, "after", True), _whole(limit, _SIZE_BITS, "limit"))

    def agent_pages(self, account, limit=1000):
        """The account's agents a page of ``limit`` at a time (an iterator of
        lists), each page read as the iteration reaches it."""
        return self._pages(self.agent_list_page, (account,), limit)

    def agent_delete(self, account, agent):
        """Raises StateError while the agent is ringing or on a call."""
        self._do(_nothing, self._lib.sb_agent_delete, _b(account, "account"), _b(agent, "agent"))

    def queue_put(self, account, queue):
        a, d = _b(account, "account"), _doc(queue, "queue")
        return self._do(_json, self._lib.sb_queue_put, a, d, len(d))

    def queue_get(self, account, queue):
        return self._do(_json, self._lib.sb_queue_get, _b(account, "account"),
                        _b(queue, "queue"))

    def queue_list(self, account):
        """Every queue of the account, in id order (a list)."""
        return self._do(_json, self._lib.sb_queue_list, _b(account, "account"))["queues"]

    def queue_list_page(self, account, after=None, limit=0):
        """A page of the account's queues: ``(queues, next)``, as
        :meth:`agent_list_page`."""
        return self._page("queues", self._lib.sb_queue_list_page, _b(account, "account"),
                          _b(after, "after", True), _whole(limit, _SIZE_BITS, "limit"))

    def queue_pages(self, account, limit=1000):
        """The account's queues a page of ``limit`` at a time (an iterator of
        lists)."""
        return self._pages(self.queue_list_page, (account,), limit)

    def queue_delete(self, account, queue):
        """Raises StateError while calls wait in the queue."""
        self._do(_nothing, self._lib.sb_queue_delete, _b(account, "account"), _b(queue, "queue"))

    def member_put(self, account, queue, agent, membership=None, **fields):
        """Add or replace one membership: ``member_put("acme", "support",
        "alice", tier=1, position=2)`` (or a dict); defaults when empty."""
        if membership is None:
            membership = fields or None
        elif fields:
            membership = _merged(membership, fields, "membership")
        d = _doc(membership, "membership", True)
        return self._do(_json, self._lib.sb_member_put, _b(account, "account"),
                        _b(queue, "queue"), _b(agent, "agent"), d, len(d) if d is not None else 0)

    def member_delete(self, account, queue, agent):
        self._do(_nothing, self._lib.sb_member_delete, _b(account, "account"), _b(queue, "queue"),
                 _b(agent, "agent"))

    # -- events ----------------------------------------------------------------

    def submit(self, account, event=None, **fields):
        """Apply one event and return the actions it caused (list of dicts).

        ``event`` is a dict (or JSON text) shaped like sb_submit_json's:
        ``{"type": "offer", "call": "c1", "queue": "support", "caller":
        "+4930123456"}``; keyword arguments add to or replace its keys, so
        ``eng.submit("acme", type="hangup", call="c1")`` works too. Types:
        offer, ring_result, hangup, abandon, transfer, agent_status. An
        offer from a withheld number leaves ``caller`` out (or passes None
        or ""); ``call_get`` then shows no caller, and ``records_export``
        finds its record by the called number alone, with ``"caller":
        None``. A ring_result may carry the ring action's ``attempt``. A
        hangup or an abandon may say who ended the call, ``by="caller"``,
        ``"agent"`` or ``"system"``, kept in its record as ``ended_by``: a
        call the system ended before an answer is ``"failed"``, and an
        agent cannot end a call not connected (StateError) nor an abandon
        (InvalidError), both naming the field ``by``. Raises
        SwitchboardError with nothing changed when the event is refused."""
        if fields:
            event = fields if event is None else _merged(event, fields, "event")
        if event is None:
            raise TypeError("submit() needs an event: a dict, JSON text or keyword arguments")
        data = _doc(event, "event")  # as a document: NaN, NUL bytes, surrogates named
        acct = _b(account, "account")
        lib = self._lib
        eng, res, own = self._enter()
        try:
            rc = lib.sb_submit_json(eng, acct, data, len(data), res)
            self._note(res)
            if rc:
                _raise(lib, rc, res)
            return _actions(lib, res)
        finally:
            self._leave(own)

    def tick(self):
        """Fire every timer due on the engine's clock; returns their actions."""
        return self._do(_actions, self._lib.sb_tick)

    def tick_for(self, max_ms):
        """Fire due timers for about ``max_ms`` milliseconds of work at most
        (``sb_tick_for``; 0: no limit, as :meth:`tick`): one timer fires at
        least. Returns ``(actions, more)``: the actions of the timers fired,
        and ``more`` True when timers were still due as the time ran out —
        call it again, letting the server's other work run in between, so
        that thousands of calls waking at once cannot hold its loop.
        ``max_ms`` is a whole number from 0; past 2**32 - 1 (about 49.7
        days, the C argument's limit) it counts as that. Anything else raises
        (ValueError, TypeError) with nothing fired."""
        max_ms = _budget(max_ms, "max_ms")
        more = ctypes.c_int(0)
        actions = self._do(_actions, self._lib.sb_tick_for, max_ms, ctypes.byref(more))
        return actions, bool(more.value)

    def batch(self):
        """A context manager: the events this thread submits in the ``with``
        block share one write transaction and one commit (``sb_batch_begin``
        / ``sb_batch_end``) — what a gateway answering a burst of events
        wants::

            with eng.batch():
                for ev in burst:
                    actions = eng.submit("acme", ev)

        Each :meth:`submit` returns its actions (or raises, that event alone
        changing nothing; the batch goes on) at once, but nothing of the
        batch is stored until the block ends: leaving it commits, and when
        that commit fails it raises (the code's error class, the engine's
        message): then none of the block's events happened, whatever their
        calls returned. An exception raised in the block does not undo the
        events submitted before it (there is no rollback): they are
        committed as the block ends, and the exception goes on — or, if
        that commit fails, the commit's error is raised, with the block's
        exception as its ``__context__``.

        The batch is the calling thread's: other threads' writes (and other
        processes') wait until the block ends, so keep it short, and do not
        wait in it for another thread that writes. Reads in the block see
        its events; a write that is not an event (a put, :meth:`tick`,
        :meth:`sweep`...) commits the batch so far first. A thread's second
        ``with eng.batch()`` inside its first joins it (the outer block
        commits); another thread's waits at the start of its block for the
        open batch to end, as that thread's other writes would (the engine
        itself refuses a second thread's batch). :meth:`close` waits for an
        open batch like a call in flight (a block still waiting to begin
        then raises InvalidError, "the engine is closing", and so do the
        block's further calls: what it submitted before is committed as it
        ends); inside the block it raises StateError. Do not ``await`` in the block: coroutines the
        event loop runs meanwhile on this thread would join the batch."""
        return _Batch(self)

    def _batch_begin(self):
        tls = self._tls
        if getattr(tls, "batch", 0):
            tls.batch += 1  # nested: joins the open batch
            return
        if self._forks != _forks:
            self._admit()  # raises (the parent's lock may be held: not taken)
        # Another thread's batch: wait for its end (the engine would refuse).
        self._batch_lock.acquire()
        try:
            eng = self._admit()  # the batch counts as a call in flight until it ends
        except BaseException:
            self._batch_lock.release()
            raise
        try:
            rc = self._lib.sb_batch_begin(eng)
        except BaseException:
            self._done()
            self._batch_lock.release()
            raise
        if rc:
            # SB_ESTATE: a batch of this engine begun outside batch() (the C
            # API called through another binding).
            self._done()
            self._batch_lock.release()
            raise _error(rc, "another thread's batch is open on this engine" if rc == ESTATE
                         else _s(self._lib.sb_strerror(rc)))
        tls.batch = 1

    def _batch_end(self):
        tls = self._tls
        depth = getattr(tls, "batch", 0)
        if not depth:
            raise StateError("SB_ESTATE", ESTATE, "no batch of this thread is open", None)
        tls.batch = depth - 1
        if depth > 1:
            return
        if self._forks != _forks:
            return  # the parent's engine and lock (see _forks): not touched
        lib = self._lib
        own = r = None
        try:
            eng = self._eng  # open still: close() waits for the batch
            # This thread's result, as _enter takes it (one of its own inside
            # a call's callback); none when it cannot be had: sb_batch_end
            # takes NULL, and the commit must happen.
            if getattr(tls, "depth", 0):
                own = res = lib.sb_result_new()
            else:
                r = getattr(tls, "res", None)
                if r is None:
                    try:
                        r = tls.res = self._results.new()
                    except MemoryError:
                        r = None
                if r is not None:
                    r.busy = True
                res = r.ptr if r is not None else None
            rc = lib.sb_batch_end(eng, res)
            if rc:
                if res:
                    _raise(lib, rc, res)
                raise _error(rc, _s(lib.sb_strerror(rc)))
        finally:
            if own:
                lib.sb_result_free(own)
            elif r is not None:
                r.busy = False
            self._done()
            self._batch_lock.release()

    def next_deadline(self):
        """Time (ms) of the earliest pending timer, or None when there is none."""
        eng, _, own = self._enter(need_res=False)
        try:
            t = self._lib.sb_next_deadline(eng)
        finally:
            self._leave(own)
        return None if t == _INT64_MAX else t

    def call_list(self, account, queue=None):
        """The account's live calls (waiting, ringing or connected), all or
        those in ``queue``: a list of ``{"id", "state", "queue", "priority",
        "offered_ms", "queued_ms", "attempts", "ringing", ...}`` (with
        ``"agent"`` once connected), in id order, without numbers."""
        return self._do(_json, self._lib.sb_call_list, _b(account, "account"),
                        _b(queue, "queue", True))["calls"]

    def call_list_page(self, account, queue=None, after=None, limit=0):
        """A page of :meth:`call_list`: ``(calls, next)``, the live calls (all,
        or those in ``queue``) whose ids come after ``after`` (None or "":
        from the first), ``limit`` at most (0: all), and ``next``, the last
        id given, while more follow (None on the last page): the next
        page's ``after``. NotFoundError (field ``queue``) for a queue the
        account does not have; InvalidError (field ``after``) for an
        ``after`` that is no call id."""
        return self._page("calls", self._lib.sb_call_list_page, _b(account, "account"),
                          _b(queue, "queue", True), _b(after, "after", True),
                          _whole(limit, _SIZE_BITS, "limit"))

    def call_pages(self, account, queue=None, limit=1000):
        """The live calls (all, or those in ``queue``) a page of ``limit`` at a
        time (an iterator of lists)."""
        return self._pages(lambda account, after, limit: self.call_list_page(
            account, queue, after, limit), (account,), limit)

    def call_get(self, account, call):
        """The call with its state and decision trace (or its record once ended)."""
        return self._do(_json, self._lib.sb_call_get, _b(account, "account"),
                        _b(call, "call"))

    # -- policies --------------------------------------------------------------

    def policy_put(self, account, name, source, cases=None, if_version=None):
        """Validate then store an account policy (and its scenario cases: a
        list or JSON text). Returns ``{"name", "version"}`` (and
        ``"previous"``); raises PolicyError (nothing changed) when it fails to
        compile, load or pass its cases. ``if_version``: store it only if the
        account's upload of that name has this version (``"*"``: has one;
        ``""``: has none), else StateError and nothing changed
        (sb_policy_put_if)."""
        src, cj = _bytes(source, "source"), _doc(cases, "cases", True)
        # cases_json is a C string without a length (Python bytes end with a NUL).
        if cj is not None:
            cj = _b(cj, "cases")
        if if_version is not None:
            return self._do(_json, self._lib.sb_policy_put_if, _b(account, "account"),
                            _b(name, "name"), src, len(src), cj,
                            _b(if_version, "if_version"))
        return self._do(_json, self._lib.sb_policy_put, _b(account, "account"),
                        _b(name, "name"), src, len(src), cj)

    def policy_list(self, account):
        """``[{"name", "version", "source": "account"|"shared", "state",
        "failures"}...]``"""
        return self._do(_json, self._lib.sb_policy_list,
                        _b(account, "account"))["policies"]

    def policy_get(self, account, name):
        """The policy of that name the account runs: ``{"name", "version",
        "source": "account"|"shared", "shadows_shared", "code"}``."""
        return self._do(_json, self._lib.sb_policy_get, _b(account, "account"),
                        _b(name, "name"))

    def policy_delete(self, account, name, if_version=None):
        """Delete the account's upload of that name (a shared one of the same
        name decides from then on). Returns ``{"name", "deleted", "now"}``;
        StateError while a queue or the retention setting needs it, or when
        ``if_version`` is given and the upload does not have it
        (sb_policy_delete_if)."""
        if if_version is not None:
            return self._do(_json, self._lib.sb_policy_delete_if, _b(account, "account"),
                            _b(name, "name"), _b(if_version, "if_version"))
        return self._do(_json, self._lib.sb_policy_delete, _b(account, "account"),
                        _b(name, "name"))

    def policy_versions(self, account, name, before=0, limit=0):
        """The account's history of policy ``name``, newest first:
        ``{"name", "versions": [{"seq", "change": "upload"|"delete",
        "version", "previous", "at_ms", "bytes", "current"}...], "next"}``;
        the entries below seq ``before`` (0: from the newest), at most
        ``limit`` (0: 50); pass ``next`` as ``before`` for the following page
        (sb_policy_versions)."""
        return self._do(_json, self._lib.sb_policy_versions, _b(account, "account"),
                        _b(name, "name"), _whole(before, 64, "before"),
                        _whole(limit, 8 * ctypes.sizeof(ctypes.c_size_t), "limit"))

    def policy_version(self, account, name, version):
        """One version of the account's policy ``name`` from its history, with
        its ``"code"``: roll back by uploading that code again
        (sb_policy_version_get)."""
        return self._do(_json, self._lib.sb_policy_version_get, _b(account, "account"),
                        _b(name, "name"), _b(version, "version"))

    def policy_versions_forget(self, account, name, version=None):
        """Drop the earlier uploads of ``version`` from the history of policy
        ``name`` (None: every entry but the newest). Returns ``{"name",
        "forgotten": N}``; StateError for the version in use
        (sb_policy_versions_forget)."""
        return self._do(_json, self._lib.sb_policy_versions_forget, _b(account, "account"),
                        _b(name, "name"), _b(version, "version", True))

    def reload(self):
        """Re-read policy_dir and swap every policy at once, or change nothing
        and raise PolicyError naming the file. Returns ``{"changed": N}``,
        with ``"policies"`` (``{"name", "version", "previous"}`` each:
        ``version`` None for one removed, with ``"stores_dropped"``: the
        accounts whose store of it, ``ctx.set``'s, went with it; no
        ``previous`` for a new one) when
        N is not 0, and ``"warnings"`` for a policy stored that
        :func:`policy_check` faults but that loads all the same (Lua's
        ``eng:reload()``, Go's ``ReloadReport``)."""
        return self._do(_json, self._lib.sb_reload)

    policy_check = staticmethod(policy_check)
    policy_test = staticmethod(policy_test)
    policy_keygen = staticmethod(policy_keygen)
    policy_sign = staticmethod(policy_sign)
    policy_verify = staticmethod(policy_verify)

    # -- API keys --------------------------------------------------------------

    def apikey_create(self, account):
        """A new key: ``{"key_id": ..., "key": "sbk_..."}`` (shown only now)."""
        return self._do(_json, self._lib.sb_apikey_create, _b(account, "account"))

    def apikey_list(self, account):
        """The account's keys by id: ``[{"key_id": "1226fe98de5628c0"}...]``
        (the keys themselves are not stored, so not listed): what
        :meth:`apikey_revoke` takes. NotFoundError (field ``account``) for
        an account that does not exist."""
        return self._do(_json, self._lib.sb_apikey_list, _b(account, "account"))["keys"]

    def apikey_verify(self, account, key):
        """True when ``key`` is a current key of ``account`` (constant time)."""
        a, k = _b(account, "account"), _bytes(key, "key")
        eng, _, own = self._enter(need_res=False)
        try:
            return self._lib.sb_apikey_verify(eng, a, k, len(k)) == 0
        finally:
            self._leave(own)

    def apikey_revoke(self, account, key_id):
        """Revoke one key by its id (from :meth:`apikey_create` or
        :meth:`apikey_list`)."""
        self._do(_nothing, self._lib.sb_apikey_revoke, _b(account, "account"),
                 _b(key_id, "key_id"))

    # -- call records and retention --------------------------------------------
    #
    # What these return is read out of the result (owned by the engine, valid
    # until the result's next use) and copied into Python values before the
    # method returns.

    def records_export(self, account, number, format="json"):
        """Every record of ``number`` (E.164) in the account, decrypted, for an
        access request. ``format="json"``: ``{"number", "records": [record
        with "role", "caller", "called", "personal_attrs"...]}``;
        ``format="csv"``: ``{"number", "count", "csv"}`` (RFC 4180 text, a
        header line, one line per record). Anonymized records are not found.
        Each request is in the account's audit log (:meth:`audit_list`), an
        ``access_request`` entry with how many records it disclosed and no
        number; one whose entry cannot be written raises (FullError for a
        full disk or map) and discloses nothing."""
        if format not in _EXPORT_FORMATS:
            raise ValueError("format must be one of %s" % ", ".join(_EXPORT_FORMATS))
        return self._do(_json, self._lib.sb_records_export, _b(account, "account"),
                        _b(number, "number"), _EXPORT_FORMATS[format])

    def erase(self, account, number):
        """An erasure request: every record of ``number`` goes through the
        retention policy's ``erase`` hook (none: deleted). Returns
        ``{"deleted", "anonymized", "kept", "failed", "held", "live",
        "reasons": {reason: N}, "earlier": [...]}``; ``kept`` counts the failed too, and running
        it again retries them; ``held``: kept by a legal hold; ``live``: calls
        of the number in progress, erased when they end; ``earlier``: what
        the requests of the number before it did (one made again counts only
        what was left)."""
        return self._do(_json, self._lib.sb_erase, _b(account, "account"),
                        _b(number, "number"))

    def records_list(self, account, query=None, **fields):
        """Records without their sealed data, newest first: ``records_list("acme",
        queue="support", from_ms=..., to_ms=..., limit=100)`` (or a dict;
        times are when calls ended, to_ms excluded; limit 100 when not given).
        The next page: ``before_ms`` and ``before_id``, the last record's
        ``ended_ms`` and ``id``. Returns a list of records; NotFoundError for a
        queue the account never had (a deleted queue's records are listed)."""
        if query is None:
            query = fields or None
        elif fields:
            query = _merged(query, fields, "query")
        if isinstance(query, dict):  # numbers C holds, as the README says
            for k in ("from_ms", "to_ms", "limit", "before_ms"):
                if k in query and query[k] is not None and not isinstance(query[k], bool):
                    _whole(query[k], 64, k, signed=True)
        d = _doc(query, "query", True)
        return self._do(_json, self._lib.sb_records_list, _b(account, "account"), d,
                        len(d) if d is not None else 0)["records"]

    def records_pages(self, account, query=None, **fields):
        """The records :meth:`records_list` gives for the query, newest first,
        a page of ``limit`` (100 when not given) at a time: an iterator of
        lists, each page read as the iteration reaches it, its
        ``before_ms``/``before_id`` the last record of the page before (a
        query's own: from the record after it). Only the first page may be
        empty. The query (a dict, JSON text of an object, keywords) is read
        at the call; the engine's refusals are raised by the page that
        meets them, as :meth:`agent_pages`'."""
        query = _merged({} if query is None else query, fields, "query")
        limit = query.get("limit")
        limit = 100 if limit is None or isinstance(limit, bool) else _whole(limit, 64, "limit",
                                                                             signed=True)

        def pages():
            q, first = dict(query), True
            while True:
                page = self.records_list(account, q)
                if page or first:
                    yield page
                if len(page) < limit:
                    return
                first = False
                q["before_ms"], q["before_id"] = page[-1]["ended_ms"], page[-1]["id"]
        return pages()

    def retention_preview(self, account, opts=None, **fields):
        """A retention dry run: the account's retention hook (or
        ``policy="retention/x"``, or a ``source="..."`` not stored) over its
        records as a sweep would, ``in_days=N`` from now or at ``now_ms``,
        writing nothing. Returns ``{"reviewed", "kept", "anonymized",
        "deleted", "overridden", "failed", "reasons", "samples", "done",
        ...}``; the options (``scope``, ``sample``, ``budget_ms``, ``next``)
        are sb_retention_preview's in switchboard.h."""
        if opts is None:
            opts = fields
        elif fields:
            opts = _merged(opts, fields, "opts")
        a, d = _b(account, "account"), _doc(opts, "opts")
        return self._do(_json, self._lib.sb_retention_preview, a, d, len(d))

    def hold_place(self, account, hold=None, **fields):
        """Place a legal hold: ``hold_place("acme", call="c1", reason="...")``,
        ``number="+44..."`` or ``from_ms=..., to_ms=...`` (or a dict; ``id``
        optional). Returns the hold ``{"id", "kind", "reason", "created_ms",
        ...}``; ExistsError for a taken id."""
        if hold is None:
            hold = fields
        elif fields:
            hold = _merged(hold, fields, "hold")
        if isinstance(hold, dict):
            for k in ("from_ms", "to_ms"):
                if k in hold and hold[k] is not None and not isinstance(hold[k], bool):
                    _whole(hold[k], 64, k, signed=True)
        a, d = _b(account, "account"), _doc(hold, "hold")
        return self._do(_json, self._lib.sb_hold_place, a, d, len(d))

    def hold_release(self, account, hold_id):
        """Release a hold; returns it with ``"released": True``."""
        return self._do(_json, self._lib.sb_hold_release, _b(account, "account"),
                        _b(hold_id, "hold_id"))

    def hold_list(self, account):
        """The account's holds (a list; a number hold shows no number)."""
        return self._do(_json, self._lib.sb_hold_list, _b(account, "account"))["holds"]

    def hold_get(self, account, hold_id):
        """One hold of the account, as :meth:`hold_list` gives it (a number
        hold shows no number). NotFoundError (field ``hold``) for an id the
        account has no hold of (a released one, another account's)."""
        return self._do(_json, self._lib.sb_hold_get, _b(account, "account"),
                        _b(hold_id, "hold_id"))

    def aggregates(self, account, queue=None, from_ms=0, to_ms=0):
        """Daily aggregates of every whole day (UTC) that [from_ms, to_ms)
        touches (0, 0: all), for one queue or (queue None) the account
        (``"queue": None``) and each of its queues: a list of ``{"day",
        "queue", "offered", "answered", ..., "service_level"}``. What each
        row counts: sb_aggregates in switchboard.h."""
        return self._do(_json, self._lib.sb_aggregates, _b(account, "account"),
                        _b(queue, "queue", True), _whole(from_ms, 63, "from_ms"),
                        _whole(to_ms, 63, "to_ms"))["days"]

    def audit_list(self, account, after=0, limit=0):
        """The account's audit log (retention decisions, erasure and access
        requests, legal holds), oldest first: entries after
        sequence number ``after``, at most ``limit`` (0: 1000). Returns
        ``{"entries": [...], "next": N}``; pass ``next`` as ``after`` for
        the following page."""
        return self._do(_json, self._lib.sb_audit_list, _b(account, "account"),
                        _whole(after, 64, "after"),
                        _whole(limit, 8 * ctypes.sizeof(ctypes.c_size_t), "limit"))

    def audit_pages(self, account, after=0, limit=0):
        """The account's audit log, oldest first, from the entry after
        ``after``: :meth:`audit_list` page after page (``limit`` entries at
        most each, 0: 1000), an iterator of lists of entries, until no entry
        is left. Only the first page may be empty. ``after`` and ``limit``
        are checked at the call; the engine's refusals are raised by the page
        that meets them."""
        after = _whole(after, 64, "after")
        limit = _whole(limit, _SIZE_BITS, "limit")

        def pages():
            nonlocal after
            first = True
            while True:
                d = self.audit_list(account, after, limit)
                if not d["entries"]:
                    if first:
                        yield []
                    return
                yield d["entries"]
                first, after = False, d["next"]
        return pages()

    def sweep(self, budget_ms=0, progress=None):
        """Run a retention sweep (``sb_sweep``): review the records whose
        review date has come, purge deleted accounts' records. ``budget_ms``:
        stop after about this long (0: until nothing is due; past 2**32 - 1,
        the C argument's limit, as that, as ``tick_for``). ``progress``: a
        callable ``progress(done, total)`` called after each transaction, on
        this thread; it may call the engine (not close it: StateError).
        Returns ``{"reviewed", "kept", "anonymized", "deleted",
        "overridden", "failed", "purged", "transactions", "seconds", "done",
        "resumed", "this_call"}``: the counts of the run (shared with a sweep
        running beside this one, and carried on after an interrupted one),
        and in ``this_call`` the same counts for this call's own work.

        An exception raised by ``progress`` cannot stop the sweep (its work
        is committed transaction by transaction): ``progress`` is not called
        again, and the exception is raised once the sweep has returned."""
        if progress is not None and not callable(progress):
            raise TypeError("progress must be callable")
        budget_ms = _budget(budget_ms, "budget_ms")
        failure = []

        def _progress_thunk(arg, done, total):
            if failure:
                return
            try:
                progress(done, total)
            except BaseException as e:  # noqa: BLE001 - raised again below
                failure.append(e)

        fn = _PROGRESS_FN(_progress_thunk) if progress is not None else _PROGRESS_FN()
        # A result of its own: progress may call the engine on this thread,
        # which would reset this thread's result under the sweep.
        lib = self._lib
        eng, _, own = self._enter(need_res=False)
        try:
            res = lib.sb_result_new()
            if not res:
                raise MemoryError("sb_result_new")
            try:
                rc = lib.sb_sweep(eng, budget_ms, fn, None, res)
                self._note(res)
                if rc:
                    _raise(lib, rc, res)
                out = _json(lib, res)
            finally:
                lib.sb_result_free(res)
        finally:
            self._leave(own)
        if failure:
            raise failure[0]
        return out

    # -- backups ---------------------------------------------------------------

    def backup(self, dest):
        """Copy the data directory into ``dest`` (a path: created, or an empty
        directory) while this engine and others keep working (``sb_backup``):
        data.mdb as one transaction saw it, compacted, and the wrapped data
        keys (data.keys). The master key is not copied: the backup opens only
        with the data directory's key (``key_file``), which must be kept
        apart. Returns ``{"dir", "bytes", "master_key"}`` (``bytes``: the
        size of the copied data.mdb). ExistsError (field ``dest``) when
        ``dest`` is not empty; FullError when the disk is full."""
        if isinstance(dest, os.PathLike):
            dest = os.fspath(dest)
        # None reaches the engine, which names the field.
        return self._do(_json, self._lib.sb_backup, _b(dest, "dest", True))

    # -- introspection and durability ------------------------------------------

    def stats(self):
        """Counters and gauges of this engine handle (see sb_stats)."""
        return self._do(_json, self._lib.sb_stats)

    def sync(self):
        """Make every event committed so far durable (needed with sync="defer")."""
        eng, _, own = self._enter(need_res=False)
        try:
            rc = self._lib.sb_sync(eng)
        finally:
            self._leave(own)
        if rc:
            raise _error(rc, _s(self._lib.sb_strerror(rc)))

    def sync_progress(self):
        """Where syncs stand (``sb_sync_progress``), for a caller that
        acknowledges only what is durable and would rather not sync when it
        need not (sync="defer"): a tuple ``(written, durable, ordered)``.

        ``written`` is the number of this process's newest commit on the
        data directory that changed something, ``durable`` the newest number
        known to be on disk; numbers only grow, 0 is before any. A commit's
        own sync makes every commit before it durable, so under steady
        writes the next commit often makes a :meth:`sync` unnecessary: read
        ``written`` after a commit; once ``durable`` reaches it, that commit
        and all before it are on disk.

        ``ordered`` is False where commits do not sync in order (an engine
        with sync="none" opened the data directory first in this process;
        the engine's SB_ESTATE): the numbers then say nothing (``durable`` is
        0), and only :meth:`sync` makes anything durable. That is not
        raised; other failures (a closed engine...) raise as every method
        does."""
        written, durable = ctypes.c_uint64(0), ctypes.c_uint64(0)
        eng, _, own = self._enter(need_res=False)
        try:
            rc = self._lib.sb_sync_progress(eng, ctypes.byref(written), ctypes.byref(durable))
        finally:
            self._leave(own)
        if rc and rc != ESTATE:
            raise _error(rc, _s(self._lib.sb_strerror(rc)))
        return written.value, durable.value, rc == 0

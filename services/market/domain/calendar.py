"""The NYSE trading calendar (``exchange_calendars``' XNYS: holidays, early closes and
special closures as published by the exchange), as numpy day arrays."""

from __future__ import annotations

import functools
import warnings
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt

Days = npt.NDArray[np.datetime64]

# exchange_calendars builds XNYS from 1885; 1990 covers any history we import and keeps
# the calendar small (≈ 0.4 s to build, once per process).
FIRST_DAY = date(1990, 1, 2)


@functools.cache
def _calendar():  # type: ignore[no-untyped-def]
    import exchange_calendars

    # exchange_calendars 4.13 reads Series.values, which pandas >= 3.1 deprecates with a
    # warning; the calendar itself is right, so that warning is not ours to act on.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Series.values", category=FutureWarning)
        warnings.filterwarnings("ignore", message="Series.values", category=DeprecationWarning)
        try:
            from pandas.errors import Pandas4Warning

            warnings.filterwarnings("ignore", message="Series.values", category=Pandas4Warning)
        except ImportError:  # pandas < 3.1
            pass
        calendar = exchange_calendars.get_calendar("XNYS", start=FIRST_DAY.isoformat())
        # Build everything lazily computed now, inside the filter.
        calendar.sessions.to_numpy()
        calendar.opens.to_numpy()
        calendar.closes.to_numpy()
        return calendar


@functools.cache
def _all_sessions() -> Days:
    return np.asarray(_calendar().sessions.to_numpy().astype("datetime64[D]"))


@functools.cache
def _closes() -> npt.NDArray[np.int64]:
    """Each session's close as epoch milliseconds (early closes included)."""
    closes = _calendar().closes.dt.tz_convert(None).to_numpy().astype("datetime64[ms]")
    return np.asarray(closes.astype(np.int64))


@functools.cache
def _opens() -> npt.NDArray[np.int64]:
    opens = _calendar().opens.dt.tz_convert(None).to_numpy().astype("datetime64[ms]")
    return np.asarray(opens.astype(np.int64))


def sessions(start: date, end: date) -> Days:
    """NYSE sessions from ``start`` to ``end`` inclusive, as ``datetime64[D]``."""
    days = _all_sessions()
    lo = np.searchsorted(days, np.datetime64(start, "D"), side="left")
    hi = np.searchsorted(days, np.datetime64(end, "D"), side="right")
    return days[lo:hi]


def is_session(day: date) -> bool:
    days = _all_sessions()
    target = np.datetime64(day, "D")
    i = int(np.searchsorted(days, target))
    return i < len(days) and days[i] == target


def session_mask(days: Days) -> npt.NDArray[np.bool_]:
    """For each of ``days``, whether it is an NYSE session."""
    return np.isin(days.astype("datetime64[D]"), _all_sessions())


def last_closed_session(now: datetime) -> date:
    """The last session whose close is at or before ``now``."""
    ms = int(now.astimezone(UTC).timestamp() * 1000)
    i = int(np.searchsorted(_closes(), ms, side="right")) - 1
    return to_date(_all_sessions()[i])


def next_session(day: date) -> date:
    days = _all_sessions()
    i = int(np.searchsorted(days, np.datetime64(day, "D"), side="right"))
    return to_date(days[i])


def previous_session(day: date) -> date:
    days = _all_sessions()
    i = int(np.searchsorted(days, np.datetime64(day, "D"), side="left")) - 1
    return to_date(days[i])


def session_bounds(day: date) -> tuple[datetime, datetime]:
    """Open and close of session ``day`` (UTC)."""
    days = _all_sessions()
    i = int(np.searchsorted(days, np.datetime64(day, "D")))
    if i >= len(days) or days[i] != np.datetime64(day, "D"):
        raise ValueError(f"{day} is not an NYSE session")
    return _from_ms(int(_opens()[i])), _from_ms(int(_closes()[i]))


def to_date(day: np.datetime64) -> date:
    return date(1970, 1, 1) + timedelta(days=int(day.astype("datetime64[D]").astype(np.int64)))


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)

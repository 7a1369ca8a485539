"""LULD-style price bands: LIMIT_STATE outside the band, TRADING_PAUSE when prices stay out.

Modelled on the US "Plan to Address Extraordinary Market Volatility" (the Limit Up-Limit Down
plan, approved by the SEC in 2012, Appendix A "Percentage Parameters").  The reference price is
the arithmetic mean price of the trades of the preceding 5 minutes; the band is the reference
price plus and minus a percentage that depends on the stock's tier and price level:

    Tier 1 (S&P 500, Russell 1000, selected ETPs)    Tier 2 (all other NMS stocks)
    reference > $3.00            5 %                 reference > $3.00            10 %
    $0.75 <= reference <= $3.00  20 %                $0.75 <= reference <= $3.00  20 %
    reference < $0.75            lesser of $0.15 or 75 %   (both tiers)

Omitted on purpose: the doubling of the percentages in the opening (9:30-9:45) and closing
(15:35-16:00) periods of the trading day — our streams are not tied to one exchange calendar —
and the rounding of bands to the penny.  A plan limit state is a *quote* at the band; we have
trades only, so a trade outside the band opens the limit state.

Crypto and fx bands are our choice, not the plan's: crypto 10 % and fx 2 % at every price level
(fractional tick sizes remove the penny problem that widens the plan's bands for cheap stocks;
crypto moves several percent in minutes on an ordinary day, a 2 % move in minutes is an extreme
event for a major currency pair).

States per symbol: NORMAL -> LIMIT on a trade outside the band (LIMIT_STATE).  LIMIT -> NORMAL on a
trade inside the band.  Once ``pause_seconds`` (15 s) of event time have passed since the limit
state opened with no trade back inside, TRADING_PAUSE is raised (dated when the pause became due,
keyed by the trade that opened the limit state) and the state is PAUSED until a trade prints inside
the band again; no LIMIT_STATE is raised while PAUSED.  The pause is raised by the symbol's next
trade at or after the due time, or — the rule is *timed* (``due``/``advance``) — as soon as the
event time of the symbol's source passes the due time by the grace period: the source's other
symbols' trades or, in a lull, the wall clock once the processor has caught up
(``pipeline.partition_state``).  Either way it is the same alert, with the same id.  No band is
applied before ``warmup_seconds`` of event time since the symbol's first trade, nor with fewer
than ``min_trades`` trades in the reference window.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional

import msgspec

from pipeline.alert_types import LIMIT_STATE, TRADING_PAUSE
from pipeline.events import Alert, Trade, iso
from pipeline.rules import asset_class
from pipeline.rulesets.base import Rule, RuleParams, RuleState, alert_on, make_alert

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BandTier:
    """Applies to reference prices above ``floor`` (or at it when ``inclusive``)."""

    floor: float
    pct: float                    # half-width as a fraction of the reference price
    cap: Optional[float] = None   # ... but at most this many currency units ("lesser of $0.15 or 75 %")
    inclusive: bool = False


BAND_TABLES: dict[str, tuple[BandTier, ...]] = {
    "tier1": (BandTier(3.00, 0.05), BandTier(0.75, 0.20, inclusive=True), BandTier(0.0, 0.75, 0.15, True)),
    "tier2": (BandTier(3.00, 0.10), BandTier(0.75, 0.20, inclusive=True), BandTier(0.0, 0.75, 0.15, True)),
    "crypto": (BandTier(0.0, 0.10, inclusive=True),),   # our choice
    "fx": (BandTier(0.0, 0.02, inclusive=True),),       # our choice
}
DEFAULT_TABLE = {"equity": "tier1", "crypto": "crypto", "fx": "fx"}


def band_half_width(reference: float, table: str) -> float:
    """Half-width of the band around ``reference`` (currency units) under ``table``."""
    for tier in BAND_TABLES[table]:
        if reference > tier.floor or (tier.inclusive and reference >= tier.floor):
            width = reference * tier.pct
            return min(width, tier.cap) if tier.cap is not None else width
    raise ValueError(f"no band tier for reference price {reference}")


def price_band(reference: float, table: str) -> tuple[float, float]:
    """(lower, upper) price band around ``reference``."""
    w = band_half_width(reference, table)
    return reference - w, reference + w


class LuldParams(RuleParams):
    bands: str = "auto"             # tier1, tier2, crypto, fx; auto = by asset class (equities tier1)
    reference_seconds: int = 300    # the reference price is the mean of this much event time
    pause_seconds: float = 15.0     # a limit state not resolved within this raises TRADING_PAUSE
    warmup_seconds: float = 300.0   # event time since the symbol's first trade before bands apply
    min_trades: int = 5             # trades in the reference window before bands apply

    def __post_init__(self):
        if self.bands != "auto" and self.bands not in BAND_TABLES:
            raise ValueError(f"bands {self.bands!r} is not one of auto, {', '.join(BAND_TABLES)}")
        if self.reference_seconds < 1:
            raise ValueError(f"reference_seconds ({self.reference_seconds}) must be >= 1")
        if self.pause_seconds <= 0 or self.warmup_seconds < 0:
            raise ValueError("pause_seconds must be > 0 and warmup_seconds >= 0")
        if self.min_trades < 1:
            raise ValueError(f"min_trades ({self.min_trades}) must be >= 1")


NORMAL, LIMIT, PAUSED = "NORMAL", "LIMIT", "PAUSED"


class LimitEpisode(msgspec.Struct, frozen=True, kw_only=True):
    """The trade that opened a limit state and the band it was outside of."""

    trade_id: str
    ts: float
    price: float
    side: str
    quantity: float
    reference: float
    lower: float
    upper: float


class BandState(RuleState, tag="luld"):
    """Per whole second of event time (oldest first): price sum and trade count; the limit state."""

    seconds: list[int] = []
    sums: list[float] = []
    counts: list[int] = []
    total: float = 0.0
    count: int = 0
    dropped: int = 0                 # seconds dropped since ``total`` was last summed exactly
    first_ts: Optional[float] = None
    phase: str = NORMAL
    episode: Optional[LimitEpisode] = None


class LuldBandRule(Rule):
    name = "luld_bands"
    alert_types = (LIMIT_STATE, TRADING_PAUSE)
    Params = LuldParams
    State = BandState
    timed = True

    def __init__(self, params: Optional[LuldParams] = None):
        super().__init__(params)
        self._tables: dict[str, str] = {}

    def table_for(self, symbol: str) -> str:
        table = self._tables.get(symbol)
        if table is None:
            bands = self.params.bands
            table = self._tables[symbol] = DEFAULT_TABLE[asset_class(symbol)] if bands == "auto" else bands
        return table

    # --- the pure decision, shared by evaluate and update -------------------------------------
    def _band(self, trade: Trade, state: BandState) -> Optional[tuple[float, float, float]]:
        """(reference, lower, upper) for ``trade``, or None before warm-up."""
        p = self.params
        if state.first_ts is None or trade.ts - state.first_ts < p.warmup_seconds:
            return None
        total, count = state.total, state.count
        oldest_kept = math.floor(trade.ts) - p.reference_seconds
        seconds = state.seconds
        i = 0
        while i < len(seconds) and seconds[i] <= oldest_kept:
            total -= state.sums[i]
            count -= state.counts[i]
            i += 1
        if count < p.min_trades:
            return None
        reference = total / count
        lower, upper = price_band(reference, self.table_for(trade.symbol))
        return reference, lower, upper

    def _step(self, trade: Trade, state: BandState):
        """(phase, episode, alert type or None, band) after ``trade``."""
        phase, episode, alert = state.phase, state.episode, None
        if phase == LIMIT and trade.ts >= episode.ts + self.params.pause_seconds:
            phase, alert = PAUSED, TRADING_PAUSE
        band = self._band(trade, state)
        if band is None:
            return phase, episode, alert, band
        reference, lower, upper = band
        if lower <= trade.price <= upper:
            return NORMAL, None, alert, band
        if phase == NORMAL:
            episode = LimitEpisode(trade_id=trade.trade_id, ts=trade.ts, price=trade.price, side=trade.side,
                                   quantity=trade.quantity, reference=reference, lower=lower, upper=upper)
            return LIMIT, episode, LIMIT_STATE, band
        return phase, episode, alert, band

    # --- the Rule interface --------------------------------------------------------------------
    def evaluate(self, trade: Trade, state: BandState) -> list[Alert]:
        return self._alerts(trade, state, self._step(trade, state))

    def update(self, trade: Trade, state: BandState) -> None:
        self._fold(trade, state, self._step(trade, state))

    def step(self, trade: Trade, state: BandState) -> list[Alert]:
        decided = self._step(trade, state)
        alerts = self._alerts(trade, state, decided)
        self._fold(trade, state, decided)
        return alerts

    def _alerts(self, trade: Trade, state: BandState, decided) -> list[Alert]:
        """The alert of a decision of ``_step`` (made before the state folds the trade in)."""
        _, _, alert, band = decided
        if alert is None:
            return []
        if alert == LIMIT_STATE:
            reference, lower, upper = band
            dev = (trade.price - reference) / reference * 100.0
            return [alert_on(trade, LIMIT_STATE, reference, dev,
                             f"{trade.symbol} {trade.price:.6g} is outside its price band "
                             f"{lower:.6g}-{upper:.6g} "
                             f"({self.table_for(trade.symbol)}) around the {self.params.reference_seconds}s "
                             f"mean {reference:.6g}")]
        return [self._pause(trade.symbol, trade.source, state.episode)]

    def due(self, state: BandState) -> float:
        return state.episode.ts + self.params.pause_seconds if state.phase == LIMIT else math.inf

    def advance(self, symbol: str, source: str, now: float, state: BandState) -> list[Alert]:
        """The pause of a symbol whose limit state outlasted ``pause_seconds`` while it did not trade."""
        if state.phase != LIMIT or now < self.due(state):
            return []
        state.phase = PAUSED
        return [self._pause(symbol, source, state.episode)]

    def _pause(self, symbol: str, source: str, ep: LimitEpisode) -> Alert:
        """TRADING_PAUSE of the limit state ``ep`` (the same alert whichever way it became due)."""
        due = ep.ts + self.params.pause_seconds
        return make_alert(TRADING_PAUSE, trade_id=ep.trade_id, symbol=symbol, price=ep.price, ts=due,
                          side=ep.side, quantity=ep.quantity, reference=ep.reference,
                          deviation=(ep.price - ep.reference) / ep.reference * 100.0, source=source,
                          message=f"{symbol} stayed outside its price band "
                                  f"{ep.lower:.6g}-{ep.upper:.6g} for {self.params.pause_seconds:g}s "
                                  f"after {ep.price:.6g} at {iso(ep.ts)}: trading pause")

    def _fold(self, trade: Trade, state: BandState, decided) -> None:
        state.phase, state.episode, _, _ = decided
        if state.first_ts is None:
            state.first_ts = trade.ts
        second = math.floor(trade.ts)
        seconds = state.seconds
        if seconds and second <= seconds[-1]:
            # same second, or a trade slightly out of order: counted with the newest second
            state.sums[-1] += trade.price
            state.counts[-1] += 1
        else:
            seconds.append(second)
            state.sums.append(trade.price)
            state.counts.append(1)
        state.total += trade.price
        state.count += 1
        oldest_kept = seconds[-1] - self.params.reference_seconds
        while seconds[0] <= oldest_kept:
            state.total -= state.sums[0]
            state.count -= state.counts[0]
            del seconds[0], state.sums[0], state.counts[0]
            state.dropped += 1
        if state.dropped >= self.params.reference_seconds:
            state.total = sum(state.sums)
            state.dropped = 0

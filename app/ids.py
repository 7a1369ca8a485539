"""Component ids of the web app, in one place so pages, callbacks and browser tests agree."""

# --- shell (every page) ------------------------------------------------------------------------
URL = "url"
STATUS_INTERVAL = "status-interval"
STATUS_BANNER = "status-banner"
STATUS_PILL = "status-pill"
USER_NAME = "user-name"
USER_ROLE = "user-role"
SIGN_OUT = "sign-out"

# --- watchlist -----------------------------------------------------------------------------------
WL_WS_PRICES = "wl-ws-prices"
WL_WS_ALERTS = "wl-ws-alerts"
WL_WS_WATCHDOG = "wl-ws-watchdog"
WL_SYMBOL = "wl-symbol"
WL_SOURCE = "wl-source"  # the source of trades whose candles the chart shows (the live one by default)
WL_TABLE = "wl-table"
WL_ROW = "wl-row"        # pattern type, {"type": WL_ROW, "symbol": ...}
WL_LAST = "wl-last"      # pattern type
WL_CHANGE = "wl-change"  # pattern type
WL_SPARK = "wl-spark"    # pattern type
WL_TS = "wl-ts"          # pattern type: event time of the price shown (for latency measurement)
WL_PRICE_STORE = "wl-price-store"
WL_CHART = "wl-chart"
WL_CHART_DRAWN = "wl-chart-drawn"  # what the chart was last drawn for (symbol, window, empty or not)
WL_INDICATORS = "wl-indicators"    # checklist of the chart's indicators (Bollinger, RSI, MACD)
WL_CHART_BOX = "wl-chart-box"      # the chart's container: taller with indicator panels
WL_CHART_RANGE = "wl-chart-range"  # the time range the user zoomed the chart to (None: whole)
WL_BOOK = "wl-book"
WL_TAPE = "wl-tape"
WL_FEED = "wl-feed"
WL_FEED_STORE = "wl-feed-store"
WL_FAST_INTERVAL = "wl-fast-interval"
WL_SLOW_INTERVAL = "wl-slow-interval"
WL_WINDOW = "wl-window"            # the candle size the chart shows (one of STOCKIT_WINDOWS)
WL_HEAD_PRICE = "wl-head-price"    # the selected symbol's last price beside the selector
WL_HEAD_CHANGE = "wl-head-change"  # ... and its change

# --- scanner -------------------------------------------------------------------------------------
SC_TABLE = "sc-table"
SC_SIGNAL_FILTER = "sc-signal-filter"
SC_INTERVAL = "sc-interval"
SC_UPDATED = "sc-updated"
SC_RULE = "sc-rule"  # the signal rule stated on the page

# --- whales --------------------------------------------------------------------------------------
WH_WS_ALERTS = "wh-ws-alerts"
WH_WS_WATCHDOG = "wh-ws-watchdog"
WH_GRID = "wh-grid"
WH_STORE = "wh-store"
WH_COUNT = "wh-count"
WH_INTERVAL = "wh-interval"

# --- alerts --------------------------------------------------------------------------------------
AL_TABLE = "al-table"
AL_SEVERITY = "al-severity"
AL_TYPE = "al-type"
AL_SYMBOL = "al-symbol"
AL_SOURCE = "al-source"  # source of trades filter (none: every source)
AL_UNACKED = "al-unacked"
AL_ACK = "al-ack"
AL_ACK_RESULT = "al-ack-result"
AL_EXPORT = "al-export"
AL_DOWNLOAD = "al-download"
AL_INTERVAL = "al-interval"
AL_BREAKERS = "al-breakers"
AL_COUNT = "al-count"
AL_DETAIL = "al-detail"                # the selected alert: notes and its audit trail
AL_NOTE_TEXT = "al-note-text"
AL_NOTE_ADD = "al-note-add"
AL_NOTE_RESULT = "al-note-result"
AL_SNOOZES = "al-snoozes"              # the active snoozes, each with an end button
AL_SNOOZE_END = "al-snooze-end"        # pattern type, {"type": AL_SNOOZE_END, "snooze": id}
AL_SNOOZE_TYPE = "al-snooze-type"
AL_SNOOZE_SYMBOL = "al-snooze-symbol"
AL_SNOOZE_SOURCE = "al-snooze-source"
AL_SNOOZE_MINUTES = "al-snooze-minutes"
AL_SNOOZE_COMMENT = "al-snooze-comment"
AL_SNOOZE_ADD = "al-snooze-add"
AL_SNOOZE_RESULT = "al-snooze-result"
AL_AUDIT = "al-audit"                  # the recent audit trail
AL_CHANGED = "al-changed"              # bumped after each change this page makes (refreshes the panels)

# --- backtest ------------------------------------------------------------------------------------
BT_SYMBOLS = "bt-symbols"
BT_START = "bt-start"
BT_END = "bt-end"
BT_SOURCE = "bt-source"
BT_RULES = "bt-rules"
BT_RUN = "bt-run"
BT_MESSAGE = "bt-message"
BT_RUN_ID = "bt-run-id"          # the run shown (a store)
BT_SHOWN = "bt-shown"            # (run, status) whose results are drawn (a store)
BT_INTERVAL = "bt-interval"
BT_PROGRESS = "bt-progress"
BT_STATUS = "bt-status"
BT_RUNS = "bt-runs"              # the recent runs table
BT_RESULTS = "bt-results"
BT_COUNTS = "bt-counts"
BT_CHART_SYMBOL = "bt-chart-symbol"
BT_CHART = "bt-chart"
BT_ONLY_ACTUAL = "bt-only-actual"
BT_ONLY_CANDIDATE = "bt-only-candidate"
BT_EXPORT = "bt-export"
BT_DOWNLOAD = "bt-download"

# --- data quality --------------------------------------------------------------------------------
DQ_WINDOW = "dq-window"
DQ_INTERVAL = "dq-interval"
DQ_LATENCY = "dq-latency"
DQ_LATE = "dq-late"
DQ_LATE_CHART = "dq-late-chart"
DQ_DEAD = "dq-dead"
DQ_DEAD_CHART = "dq-dead-chart"
DQ_DEAD_TABLE = "dq-dead-table"
DQ_GAPS = "dq-gaps"
DQ_UPDATED = "dq-updated"

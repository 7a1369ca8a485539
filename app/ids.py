"""Component ids of the web app, in one place so pages, callbacks and browser tests agree."""

# --- shell (every page) ------------------------------------------------------------------------
URL = "url"
STATUS_INTERVAL = "status-interval"
STATUS_BANNER = "status-banner"
STATUS_PILL = "status-pill"
CLOCK = "clock"
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
WL_CHART_TITLE = "wl-chart-title"
WL_BOOK = "wl-book"
WL_BOOK_FIG = "wl-book-fig"
WL_TAPE = "wl-tape"
WL_FEED = "wl-feed"
WL_FEED_STORE = "wl-feed-store"
WL_FAST_INTERVAL = "wl-fast-interval"
WL_SLOW_INTERVAL = "wl-slow-interval"
WL_HEADLINE = "wl-headline"

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

"""Every component id, typed once. Browser tests and automation rely on the public ones."""

# Public, stable ids
TEXT = "text-input"
TEXT_PAIR = "text-pair-input"
MODEL = "model-select"
ANALYZE = "analyze-button"
LAYER = "layer-slider"
HEAD = "head-select"
HEAD_GRID = "head-grid"
HEAD_HEATMAP = "head-heatmap"
ARC_VIEW = "arc-view"
STATUS = "status-area"

# Internal ids
URL = "url-state"  # {search, n}: the query string when the page opens or history moves (callbacks/urlstate.py)
SHARE = "share-state"  # what a link says of the analysis shown: {text, pair, model} or {id, model}
COPY_LINK = "copy-link"
LANGUAGE = "language-button"  # dict id: {"type": LANGUAGE, "lang": "en" | "zh"}
I18N = "ae-i18n"  # hidden element carrying the words the browser-side code shows, in the page's language
URL_SINK = "url-sink"  # the output of the browser-side URL writer (nothing reads it)
HANDLE = "analysis-handle"  # the analysis shown: {key, model, layers, heads, tokens}; the attention stays on the server
VIEW_REQUEST = "view-request"  # what the browser-side gate asks the router to draw: {changed, n}
VIEW_NOTICE = "view-notice"  # a line saying which values from the page were out of range
HEATMAP_TOOLTIP = "head-heatmap-tooltip"
TOKEN = "followed-token"  # the raw index of the token followed in Token focus (None: a pronoun, else the first word)
ARC_HOVER_SINK = "arc-hover-sink"  # the output of the browser-side arc hover (nothing reads it)
TABS = "view-tabs"
EXAMPLE = "example-button"  # dict id: {"type": EXAMPLE, "index": i}
GRID_TOOLTIP = "head-grid-tooltip"
ARC_TOP_K = "arc-top-k"
ARC_MIN_WEIGHT = "arc-min-weight"
ARC_FOCUS = "arc-focus-store"
ARC_HINT = "arc-hint"
ARC_LEGEND = "arc-legend"  # which colour is which head, when every head's arcs are drawn
ARC_START = "arc-start"  # the first token the arc view draws, for texts longer than its window
ARC_START_WRAP = "arc-start-wrap"
PAIR_COLLAPSE = "pair-collapse"
PAIR_TOGGLE = "pair-toggle"

TAB_GRID = "tab-grid"
TAB_HEATMAP = "tab-heatmap"
TAB_ARCS = "tab-arcs"

HEAD_ALL = "all"
HEAD_MEAN = "mean"

# View switches (apply to every view)
ATTN_MODE = "attention-mode"  # "raw" | "rollout"
VIEW_SWITCHES = "view-switches"  # ["hide", "merge"]

# Analyses (issue 4)
TAB_OVERVIEW = "tab-overview"
TAB_ATLAS = "tab-atlas"
TAB_FOCUS = "tab-focus"
OVERVIEW = "model-overview"
OVERVIEW_TOOLTIP = "model-overview-tooltip"
ATLAS_MAP = "atlas-map"
ATLAS_TABLE = "atlas-table"
ATLAS_TABLE_HOLDER = "atlas-table-holder"  # the table is put here when the atlas first opens
ATLAS_TABLE_FOR = "atlas-table-for"  # what the table in the page measures ("key:window"): sent once
ATLAS_METRIC = "atlas-metric"
ATLAS_WINDOW = "atlas-window"
FOCUS_TOKEN = "focus-token"
FOCUS_K = "focus-k"
FOCUS_HEATMAP = "focus-heatmap"
FOCUS_TABLES = "focus-tables"
ATLAS_LEGEND = "atlas-legend"
# Progress and Cancel of a long metric pass (issue 18): the job the page follows, its poll, bar and button
ATLAS_JOB = "atlas-job"  # {"id": 32 hex digits} while the atlas is measured in the background, else None
ATLAS_POLL = "atlas-poll"  # a dcc.Interval, enabled only while a job runs
ATLAS_PROGRESS = "atlas-progress"  # the area holding the bar, its line and Cancel (hidden when idle)
ATLAS_PROGRESS_BAR = "atlas-progress-bar"
ATLAS_PROGRESS_TEXT = "atlas-progress-text"  # how a pass ended (cancelled, failed)
ATLAS_PROGRESS_LABEL = "atlas-progress-label"  # heads measured so far: inside the progress area
ATLAS_CANCEL = "atlas-cancel"
ATLAS_MEASURING = "atlas-measuring"  # over the atlas's figure while a pass runs: says it is measuring
# ... and of a long analysis (the forward pass, layer by layer)
ANALYZE_JOB = "analyze-job"
ANALYZE_POLL = "analyze-poll"
ANALYZE_READY = "analyze-ready"  # {"n": …}: the analysis a job ran is cached, Analyze shows it
ANALYZE_PROGRESS = "analyze-progress"
ANALYZE_PROGRESS_BAR = "analyze-progress-bar"
ANALYZE_PROGRESS_TEXT = "analyze-progress-text"  # how it ended (cancelled, failed)
ANALYZE_PROGRESS_LABEL = "analyze-progress-label"  # layers run so far: inside the progress area
ANALYZE_CANCEL = "analyze-cancel"

# Inside a head (issue 10)
TAB_INSIDE = "tab-inside"
INSIDE_QUERY = "inside-query"
INSIDE_STATUS = "inside-status"
INSIDE_VECTORS = "inside-vectors"
INSIDE_WEIGHTS = "inside-weights"

# Encoder-decoder models and generation (issue 13)
TARGET = "target-input"  # the target text of an encoder-decoder model (empty: the model writes one)
TARGET_WRAP = "target-wrap"
CONTINUE = "continue-tokens"  # a decoder-only model continues the text by this many tokens (0: not)
CONTINUE_WRAP = "continue-wrap"
KIND = "attention-kind"  # encoder / decoder / cross
KIND_DIMS = "attention-kind-dims"  # per kind of attention: its layers and head choices (the slider follows the kind)
KIND_WRAP = "attention-kind-wrap"
PAIR_FILTER = "pair-filter"  # "all" or A→A, A→B, B→A, B→B
PAIR_WRAP = "pair-filter-wrap"
TAB_GENERATION = "tab-generation"
GEN_STEP = "generation-step"
GEN_STATUS = "generation-status"
GEN_HEADS = "generation-heads"
GEN_LAYERS = "generation-layers"
ZOOM = "heatmap-zoom"  # a box zoom of a long text's heatmap: {key, x: [a, b], y: [a, b]} in units (29-zoom.js)

# Exports (issue 11)
EXPORT_MENU = "export-menu"
EXPORT_PNG = "export-png"
EXPORT_SVG = "export-svg"
EXPORT_CSV = "export-csv"
EXPORT_JSON = "export-json"
EXPORT_HTML = "export-html"
EXPORT_LINK = "export-link"  # the server's answer to CSV / JSON / HTML: the download link to follow
EXPORT_STATUS = "export-status"
EXPORT_SINK = "export-sink"
EXPORT_IMAGE = "export-image"  # the server's answer to PNG / SVG: which graph, under which name

# Compare (issue 11)
TAB_COMPARE = "tab-compare"
COMPARE_TEXT = "compare-text"
COMPARE_MODEL = "compare-model"
COMPARE_BUTTON = "compare-button"
COMPARE_HANDLE = "compare-handle"  # the handle of analysis B (as ``HANDLE`` is A's)
COMPARE_SHARE = "compare-share"  # what a link says of B: its text and model
COMPARE_STATUS = "compare-status"
COMPARE_FOCUS = "compare-focus"
COMPARE_HEADS = "compare-heads"
COMPARE_TABLE_HOLDER = "compare-table-holder"
COMPARE_TABLE = "compare-table"

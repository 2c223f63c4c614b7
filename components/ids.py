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
REQUEST = "request-store"  # what was analysed: {text, text_pair, model_id}; the attention stays on the server
TABS = "view-tabs"
EXAMPLE = "example-button"  # dict id: {"type": EXAMPLE, "index": i}
GRID_TOOLTIP = "head-grid-tooltip"
ARC_TOP_K = "arc-top-k"
ARC_MIN_WEIGHT = "arc-min-weight"
ARC_FOCUS = "arc-focus-store"
ARC_HINT = "arc-hint"
PAIR_COLLAPSE = "pair-collapse"
PAIR_TOGGLE = "pair-toggle"

TAB_GRID = "tab-grid"
TAB_HEATMAP = "tab-heatmap"
TAB_ARCS = "tab-arcs"

HEAD_ALL = "all"
HEAD_MEAN = "mean"

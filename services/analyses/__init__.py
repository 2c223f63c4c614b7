"""What the views compute from a result: matrix transforms (``matrices``), measures of attention rows
(``measures``), tokens and words (``tokens``), per-head metrics and types (``heads``), kinds of attention
and pair filters (``kinds``), what a view shows given the switches (``views``), two analyses side by side
(``compare``) and the numbers behind a view as CSV (``exports``). Pure numpy: no model runs here.
"""

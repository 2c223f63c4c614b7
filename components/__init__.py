"""Layout pieces and figure builders: numpy in, Plotly figures (plain dicts) out. No torch here."""

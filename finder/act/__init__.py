"""Acting on what finder found: export the matches (copy, link), tag them in XMP sidecars, find
the duplicates to clean out."""

"""Import every check module, in the order the report lists them (importing registers the checks)."""

from . import ipo_md, ipo_md_appendix, inpo, mirror_descent, bpo_iopo  # noqa: F401

"""Transitional: :mod:`dvdlib.book.headlines` under its old name, for the chapters.

The chapters still write ``from dvdlib import headlines``; the notebooks are being rewritten and
will write ``from dvdlib.book import headlines``. Until then this module *is* that module (the
same object in ``sys.modules``, so nothing is copied). Delete it when no notebook imports
``dvdlib.headlines``; it is the one module outside :mod:`dvdlib.book` allowed to import it
(``tests/test_import_graph.py``).
"""

import sys

from dvdlib.book import headlines as _headlines

sys.modules[__name__] = _headlines

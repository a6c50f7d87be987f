"""The Sphinx extension of the rendered book (``sphinx.extra_extensions`` in ``_config.yml``).

Jupyter Book 1 loads it by this module's name when it renders the staged book; the builder
(:mod:`dvdlib.book.build`) writes :data:`BOOK_CSS_TEXT` beside the offline MathJax, and
:func:`setup` links it from every page.
"""

from __future__ import annotations

BOOK_CSS = "dvdbook.css"  # staged beside MathJax (a static path), linked from every page
BOOK_CSS_TEXT = """\
/* The theme styles span.math for MathJax 3: inline-flex, overflow hidden. On Sphinx's wrapper
   that turns MathJax 2's inline output into a block; on MathJax 2's own inner span.math (an
   inline-block) overflow moves its baseline to its bottom edge. Both lift math off the line. */
span.math { display: inline; }
.MathJax span.math { overflow: visible; max-width: none; }
"""


def setup(app):
    """Sphinx extension for the rendered book (``extra_extensions`` in ``_config.yml``).

    sphinx-thebe, which Jupyter Book 1 always loads, registers its inline configuration script
    twice, and the second ``const`` declaration is a script error on every page: each page keeps
    one copy of every script. Every page also links the book's small stylesheet.
    """
    app.connect("html-page-context", _drop_duplicate_scripts)
    app.add_css_file(BOOK_CSS)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # An inline script is registered with filename None or "": the same script either way.
        identity = (str(getattr(script, "filename", script) or ""),
                    repr(sorted(getattr(script, "attributes", {}).items())))
        if identity not in seen:
            seen.add(identity)
            unique.append(script)
    context["script_files"] = unique  # a new list: the builder's own list is shared by pages

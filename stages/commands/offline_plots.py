"""The HTML page `dvc plots show` fills, with Vega, Vega-Lite and vega-embed inline: plots render offline.

    python -m stages.commands.offline_plots .dvc/offline.html      (make setup runs it; .dvc/config names the file)

DVC's default page loads the three libraries from a CDN, so with no network it is blank. DVC takes another
page (`plots.html_template` in .dvc/config, or `dvc plots show --html-template`): one with a `{plot_divs}`
placeholder and without `{scripts}`, where DVC would put its CDN tags. The libraries come from the
vl-convert-python wheel (already a dependency, for `srlm diff`'s PNGs): `javascript_bundle()` returns
vega-embed, Vega-Lite and Vega with their dependencies as one script that sets `window.vegaEmbed`.
The page is generated, not committed: 0.9 MB of someone else's minified code, and its version follows the wheel.
"""

from __future__ import annotations

import sys
from pathlib import Path

from stages.core import rows
from stages.core.errors import entry

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>srlm plots</title>
<!-- vega {vega}, vega-lite {vega_lite}, vega-embed {embed}, from the vl-convert-python wheel: no network -->
<script type="text/javascript">
(function () {{
{bundle}
}})();
</script>
<style>
  body {{ font-family: sans-serif; margin: 1em 2em; }}
  body > div {{ display: inline-block; vertical-align: top; margin: 0 2em 2em 0; }}
</style>
</head>
<body>
<h1>srlm: dvc plots</h1>
{{plot_divs}}
</body>
</html>
"""


def page() -> str:
    import vl_convert as vlc

    bundle = vlc.javascript_bundle()  # its default snippet sets window.vegaEmbed / vega / vegaLite
    return PAGE.format(
        bundle=bundle,
        vega=vlc.get_vega_version(),
        vega_lite=vlc.get_vegalite_versions()[-1],
        embed=vlc.get_vega_embed_version(),
    )


@entry
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else ".dvc/offline.html")
    rows.write_text(page(), out)
    print(f"offline_plots: {out} (Vega, Vega-Lite, vega-embed inline; dvc plots show uses it offline)")


if __name__ == "__main__":
    main()

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed, pre-compressed static files; `import ... from "./x.js"` and `import("./x.js")`
    inside our ES modules are rewritten to the hashed names too, so every module is
    served with immutable cache headers."""

    support_js_module_import_aggregation = True

"""A serving export damaged the way only the comparison with Keras can catch."""
import json

import numpy as np

from ml.engine import file_sha256


def corrupt_export(export_dir):
    """Triple some weights of the export in `export_dir` and update its export.json to match, so
    the sha256 checks pass and only the comparison with Keras can tell."""
    weights = np.fromfile(export_dir / "serving.bin", dtype=np.float32)
    middle = len(weights) // 2
    weights[middle:middle + 20000] *= 3.0
    weights.tofile(export_dir / "serving.bin")
    record = json.loads((export_dir / "export.json").read_text())
    record["files"]["serving.bin"] = file_sha256(export_dir / "serving.bin")
    (export_dir / "export.json").write_text(json.dumps(record))

"""The reader seam: which reader reads a folder, and where an LA folder's spacing comes from (never its name)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import shared_dataset

from sslbench.datasets import readers
from sslbench.datasets.errors import DatasetError


@pytest.fixture(autouse=True)
def fresh_memo(monkeypatch):
    monkeypatch.setattr(readers, "_OPEN", {})


def test_an_la_folder_without_metadata_gets_the_la_spacing_whatever_its_name(tiny_data, tmp_path):
    root = tmp_path / "my-la-half"  # the old heuristic gave every "*half*" folder 1.25 mm
    shutil.copytree(tiny_data, root)
    (root / "dataset.json").unlink()
    ds = readers.open_dataset(root)
    assert (
        ds.format == "la-h5"
        and ds.spacing == (0.625,) * 3
        and ds.class_names == ("background", "left atrium")
    )


def test_the_shared_half_resolution_la_is_known_by_its_content():
    ds = readers.open_dataset(shared_dataset("la-half"))
    assert ds.name == "la-half" and ds.spacing == (1.25,) * 3


def test_dataset_json_names_the_reader_and_an_unknown_one_is_one_line(tiny_data, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(tiny_data, root)
    assert readers.reader_for(root).name == "la-h5"
    meta = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**meta, "format": "zarr"}))
    with pytest.raises(
        DatasetError, match=r"dataset.json: format 'zarr' is not a known reader \(la-h5, nifti\)"
    ):
        readers.reader_for(root)
    (root / "dataset.json").write_text(json.dumps({**meta, "spacing_mm": [0.7, 0.8, 2.5]}))
    assert readers.open_dataset(root).spacing == (0.7, 0.8, 2.5)
    assert readers.open_dataset(root, (1.0, 1.0, 3.0)).spacing == (1.0, 1.0, 3.0)  # data.spacing wins

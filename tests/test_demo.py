"""The demo runs on a few of its bundled documents and finds what they contain."""

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("review_documents", EXAMPLES / "review_documents.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_demo_reviews_documents_and_merges_every_finding(demo: ModuleType, tmp_path: Path) -> None:
    for name in sorted(p.name for p in (EXAMPLES / "documents").glob("*.txt"))[:4]:
        shutil.copy(EXAMPLES / "documents" / name, tmp_path / name)
    sections = demo.split(demo.load_documents(tmp_path))
    result = demo.main(tmp_path, progress=False)
    report = result.output
    assert report.sections == len(sections) == result.summary.total
    assert len(report.documents) == 4
    assert sum(report.severities.values()) == len(sections)

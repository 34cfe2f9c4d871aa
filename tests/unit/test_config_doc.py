"""docs/config.md is generated from the config classes (scripts/config_doc.py) and must be current:
a key added, removed, retyped or re-defaulted without `make config-doc` fails here."""
import importlib.util

from tests.helpers import REPO

spec = importlib.util.spec_from_file_location("config_doc", REPO / "scripts" / "config_doc.py")
config_doc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(config_doc)


def test_docs_config_md_is_current():
    assert (REPO / "docs" / "config.md").read_text() == config_doc.render(), "docs/config.md is stale: make config-doc"


def test_every_key_has_its_line():
    assert config_doc.undocumented() == []


def test_comments_are_read_beside_and_above_a_field():
    source = '''
class A:
    x: int  # beside
    # above,
    # two lines
    y: str = "v"
    z: float
'''
    assert config_doc.field_comments(source) == {("A", "x"): "beside", ("A", "y"): "above, two lines", ("A", "z"): ""}


def test_a_row_names_key_type_default_and_meaning():
    text = config_doc.render()
    assert "| `input.max_text_chars` | `int` | `10000` | title and description are cut to this many characters" in text
    assert "| `paths.single_writer` | `bool` | `false` |" in text
    assert "| `train.cutoff` | `Optional[str]` | required |" in text
    assert "| [`score`](#score) | `jobs.evaluate`, `jobs.score` |" in text

"""scripts/book_crossing.py's settings (the converter itself runs in `make bench-external`): what it
writes next to the exports must load as the jobs' config, column names with hyphens included."""
import importlib.util

from rec_lib.core.config import FeatureJobConfig, TrainJobConfig
from rec_lib.platform.cli import job_parser, load_job_config
from tests.helpers import REPO

spec = importlib.util.spec_from_file_location("book_crossing", REPO / "scripts" / "book_crossing.py")
book_crossing = importlib.util.module_from_spec(spec)
spec.loader.exec_module(book_crossing)


def _config(job, settings):
    args = job_parser("").parse_args(["--conf-file", str(REPO / "conf" / "local.yaml"), "--set", " ".join(settings)])
    return load_job_config(job, args)


def test_the_converters_settings_load_as_the_jobs_config():
    features = _config(FeatureJobConfig, book_crossing.SETTINGS)
    assert (features.input.encoding, features.input.csv_delimiter) == ("ISO-8859-1", ";")
    assert features.input.columns["items"]["item_id"] == "ISBN"
    assert features.input.columns["events"]["ts"] == "Event-Time"
    train = _config(TrainJobConfig, book_crossing.SETTINGS)
    assert train.train.attribute_types == {"Image-URL-S": "ignore", "Image-URL-M": "ignore", "Image-URL-L": "ignore",
                                           "Year-Of-Publication": "numeric"}

"""Country codes for the carbon intensity, read from CodeCarbon's own table without importing it."""

import json
import subprocess
import sys

import pytest

from dlbench import environment


def test_known_country_is_upper_cased():
    assert environment.check_country("FRA") == "FRA"
    assert environment.check_country("fra") == "FRA"
    assert environment.carbon_countries()["FRA"] == "France"


def test_unknown_country_is_one_line_that_says_where_the_list_is():
    with pytest.raises(ValueError) as error:
        environment.check_country("XYZ")
    path = environment.carbon_countries_path()
    assert str(error.value) == (
        "unknown country code 'XYZ' for the carbon intensity; use an ISO 3166 alpha-3 code that CodeCarbon "
        f"knows (e.g. FRA, DEU, USA; the list is in {path})")
    assert path.name == "global_energy_mix.json" and path.parent.name == "private_infra"


def test_the_table_is_codecarbons_and_large():
    countries = environment.carbon_countries()
    assert len(countries) > 100
    assert {"DEU", "USA", "CAN", "CHN", "SWE"} <= set(countries)
    assert all(len(code) == 3 and code.isupper() for code in countries)
    with open(environment.carbon_countries_path(), encoding="utf-8") as file:
        assert set(countries) <= set(json.load(file))


def test_without_the_table_the_code_passes_unchanged(monkeypatch):
    monkeypatch.setattr(environment, "carbon_countries", lambda: {})
    assert environment.check_country("xyz") == "xyz"


def test_missing_codecarbon_gives_no_table(monkeypatch):
    monkeypatch.setattr(environment.importlib.util, "find_spec", lambda name: None)
    environment.carbon_countries_path.cache_clear()
    environment.carbon_countries.cache_clear()
    try:
        assert environment.carbon_countries_path() is None and environment.carbon_countries() == {}
    finally:
        environment.carbon_countries_path.cache_clear()  # Later tests see the real table.
        environment.carbon_countries.cache_clear()


def test_importing_these_modules_imports_no_heavy_library():
    probe = (
        "import sys; import dlbench.environment, dlbench.config, dlbench.data; "
        "dlbench.environment.check_country('FRA'); "
        "print(sorted(name for name in ('codecarbon', 'tensorflow', 'keras', 'pandas') if name in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert output.stdout.strip() == "[]"

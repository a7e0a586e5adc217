"""The `dualsync` pack commands, through typer's runner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from shared.cli import app

from .conftest import TEMPLATES, pack_doc, table

runner = CliRunner()


def test_validate_templates():
    result = runner.invoke(app, ["validate", *map(str, sorted(TEMPLATES.glob("*.yaml")))])
    assert result.exit_code == 0, result.output
    assert result.output.count("✓") == 3


def test_validate_lists_every_problem_and_exits_1(write_pack):
    bad = write_pack(pack_doc(table(direction="up", depends_on=["x"]), table(name="b", depends_on=["ghost"])),
                     "bad.yaml")
    result = runner.invoke(app, ["validate", str(TEMPLATES / "bc-sales.yaml"), str(bad)])
    assert result.exit_code == 1
    assert "bc-sales.yaml" in result.output and "2 problem(s)" in result.output
    assert "mapping 'customers': field 'direction'" in result.output
    assert "mapping 'b': field 'depends_on': depends on unknown mapping 'ghost'" in result.output


def test_plan_lists_dependencies_first():
    result = runner.invoke(app, ["plan", str(TEMPLATES / "bc-sales.yaml")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()

    def row(name):
        return next(i for i, line in enumerate(lines) if f"│ {name} " in line)

    assert row("salespeople") < row("customers") and row("currencies") < row("customers")
    assert row("units-of-measure") < row("items")
    p2c = runner.invoke(app, ["plan", str(TEMPLATES / "prospect-to-cash.yaml")])
    assert "route sales-contacts" in p2c.output


def test_map_prints_the_payload():
    record = {"number": "10000", "displayName": "Adatum", "blocked": "All"}
    result = runner.invoke(app, ["map", str(TEMPLATES / "bc-sales.yaml"), "customers", "--direction", "to-crm"],
                           input=json.dumps(record))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["payload"] == {"accountnumber": "10000", "name": "Adatum", "statecode": 1}


def test_map_reports_field_errors_and_bad_arguments():
    pack = str(TEMPLATES / "bc-sales.yaml")
    failing = runner.invoke(app, ["map", pack, "currencies", "--direction", "to-crm"], input='{"code": "EURO"}')
    assert failing.exit_code == 1 and "code ⇄ isocurrencycode" in json.loads(failing.stdout)["errors"][0]
    assert runner.invoke(app, ["map", pack, "nope", "-d", "to-crm"], input="{}").exit_code == 2
    assert runner.invoke(app, ["map", pack, "customers", "-d", "sideways"], input="{}").exit_code == 2
    assert runner.invoke(app, ["map", pack, "customers", "-d", "to-crm"], input="not json").exit_code == 2

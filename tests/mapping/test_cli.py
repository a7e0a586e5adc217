"""The `dualsync` pack commands, through typer's runner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from shared.cli import app

from .conftest import TEMPLATES, pack_doc, table

runner = CliRunner()


def test_validate_without_arguments_checks_each_standard_pack_on_its_own(monkeypatch):
    # The standard packs are alternatives (fo-dataverse and prospect-to-cash clash): no arguments, no clash check.
    monkeypatch.chdir(TEMPLATES.parent)
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.output
    assert result.output.count("✓") == 3 and "cannot run together" not in result.output


def test_validate_each_template_alone():
    for path in sorted(TEMPLATES.glob("*.yaml")):
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 0, result.output


def test_validate_refuses_packs_that_write_the_same_table():
    fo, p2c = str(TEMPLATES / "fo-dataverse.yaml"), str(TEMPLATES / "prospect-to-cash.yaml")
    result = runner.invoke(app, ["validate", fo, p2c])
    assert result.exit_code == 1
    assert "cannot run together" in result.output
    clash = next(line for line in result.output.splitlines() if "'accounts-to-customers'" in line)
    assert "fo-dataverse.yaml" in clash and "prospect-to-cash.yaml" in clash
    assert "mapping 'customers'" in clash and "'CustomersV3'" in clash
    assert "'ContactPersonsV2'" in result.output
    # bc-sales and fo-dataverse share the CRM: both write Dataverse accounts and contacts.
    bc = runner.invoke(app, ["validate", str(TEMPLATES / "bc-sales.yaml"), fo])
    assert bc.exit_code == 1 and "dataverse table 'accounts'" in bc.output


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

"""The generated files: Convex's paths and shapes, from the app's registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from backend.codegen import app_files
from backend.codegen.api import describe, write
from backend.udf.app import load_app
from tests.apps.typed.functions import messages

ROOT = Path(__file__).resolve().parents[3]


def typed_files() -> dict[str, str]:
    return app_files(load_app("tests.apps.typed.schema", "tests.apps.typed.functions"))


def test_parameters_with_defaults_are_optional_and_the_return_annotation_is_the_result() -> None:
    fn = describe("messages:list", messages.list)
    assert (fn.kind, fn.visibility) == ("query", "public")
    assert fn.args == '{ channel: Id<"channels">; limit?: number }'
    assert fn.returns == "Array<Record<string, any>>"
    assert fn.reference == (
        'FunctionReference<"query", "public", { channel: Id<"channels">; limit?: number }, '
        "Array<Record<string, any>>>"
    )


def test_a_single_model_parameter_is_the_args_object_and_a_model_result_is_its_shape() -> None:
    fn = describe("messages:send", messages.send)
    assert fn.args == (
        '{ channel: Id<"channels">; body: string; attachments?: Array<{ url: string; '
        "size: number }>; tags?: Record<string, string> | null }"
    )
    assert fn.returns == '{ id: Id<"messages">; words: number }'


def test_modules_nest_as_convex_paths_do_and_internal_functions_are_in_internal() -> None:
    dts = typed_files()["api.d.ts"]
    public, internal = dts.split("export declare const internal")
    assert '  admin: {\n    users: {\n      ban: FunctionReference<"mutation", "public"' in public
    assert '  messages: {\n    list: FunctionReference<"query", "public"' in public
    assert "purge" not in public
    assert (
        'purge: FunctionReference<"mutation", "internal", { before: number }, number>' in internal
    )
    assert "ban" not in internal


def test_the_engines_public_functions_are_in_api_and_its_system_ones_in_neither() -> None:
    dts = typed_files()["api.d.ts"]
    assert (
        'verifyPassword: FunctionReference<"mutation", "public", { action: string; password: string'
        in dts
    )
    assert "_system" not in dts
    assert "deliver" not in dts


def test_the_data_model_has_each_app_table_with_system_fields_and_indexes() -> None:
    model = typed_files()["dataModel.d.ts"]
    assert (
        'document: { _id: Id<"messages">; _creationTime: number; channel: Id<"channels">; '
        'author: string; body: string; kind?: "text" | "image"; meta?: Record<string, string> '
        "| null };"
    ) in model
    assert (
        'fieldPaths: "_creationTime" | "_id" | "author" | "body" | "channel" | "kind" | "meta" '
        "| `meta.${string}`;"
    ) in model
    assert 'by_channel: ["channel", "_creationTime"];' in model
    assert 'by_creation_time: ["_creationTime"];' in model
    assert "_users" not in model  # the engine's tables are not the app's data model
    assert "export type Id<TableName extends TableNames | SystemTableNames>" in model


def test_api_js_is_convexs_any_api() -> None:
    js = typed_files()["api.js"]
    assert 'import { anyApi } from "convex/server";' in js
    assert "export const api = anyApi;\nexport const internal = anyApi;\n" in js


def test_write_touches_only_files_that_changed(tmp_path: Path) -> None:
    files = typed_files()
    assert sorted(write(tmp_path, files)) == ["api.d.ts", "api.js", "dataModel.d.ts"]
    assert write(tmp_path, files) == []
    (tmp_path / "api.js").write_text("stale")
    assert write(tmp_path, files) == ["api.js"]


def _codegen(*args: str, app: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "DEV_MODE": "1"}
    if app:
        env |= {"APP_SCHEMA": f"{app}.schema", "APP_FUNCTIONS": f"{app}.functions"}
    return subprocess.run(
        [sys.executable, "-m", "backend", "codegen", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_cli_writes_then_checks(tmp_path: Path) -> None:
    out = tmp_path / "convex" / "_generated"
    assert _codegen("--check", "--out", str(out), app="tests.apps.typed").returncode == 1
    done = _codegen("--out", str(out), app="tests.apps.typed")
    assert done.returncode == 0, done.stderr
    assert "wrote api.js, api.d.ts, dataModel.d.ts" in done.stdout
    assert _codegen("--check", "--out", str(out), app="tests.apps.typed").returncode == 0
    (out / "api.d.ts").write_text("// edited by hand")
    stale = _codegen("--check", "--out", str(out), app="tests.apps.typed")
    assert stale.returncode == 1
    assert "api.d.ts is not current" in stale.stderr


def test_the_demos_committed_api_is_current() -> None:
    checked = _codegen("--check")
    assert checked.returncode == 0, checked.stderr

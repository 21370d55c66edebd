"""The files Convex's codegen writes, from the app's registry: ``convex/_generated/``.

``api.js`` is what Convex writes (``api`` and ``internal`` are ``anyApi``: a reference is
only its path at run time); ``api.d.ts`` is Convex's *static* API form, a tree of
``FunctionReference<kind, visibility, Args, Returns>`` per function, so
``import { api, internal } from "../convex/_generated/api"`` type-checks a frontend's calls
exactly as it does against a Convex deployment. ``dataModel.d.ts`` has ``Id``, ``Doc``,
``TableNames`` and ``DataModel`` from the schema. Nothing in them imports the functions'
source, so a frontend needs only ``convex`` installed.

Paths map as Convex's do: ``functions/messages.py::list`` (``messages:list``) is
``api.messages.list``; ``functions/admin/users.py::ban`` is ``api.admin.users.ban``. The
engine's own public functions (``sensitive:verifyPassword``, ...) are in ``api`` too; its
``_system/`` ones are in neither, as Convex keeps its system functions out of them.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, get_type_hints

from pydantic import BaseModel

from backend.codegen.typescript import TypeWriter, field_paths, object_type, property_key
from backend.schema_definition import Schema
from backend.udf.registry import RegisteredFunction, Visibility

GENERATED_DIR = Path("convex") / "_generated"
COMMAND = "python -m backend codegen"


def _header(what: str) -> str:
    return (
        "/* eslint-disable */\n"
        "/**\n"
        f" * {what}\n"
        " *\n"
        " * THIS CODE IS AUTOMATICALLY GENERATED.\n"
        " *\n"
        f" * To regenerate, run `{COMMAND}` (`python -m backend dev` does on every save).\n"
        " * @module\n"
        " */\n\n"
    )


@dataclass(frozen=True)
class FunctionType:
    """One function as the generated API declares it."""

    path: str  # ``module/path:name``
    kind: str  # query | mutation | action
    visibility: str  # public | internal
    args: str
    returns: str

    @property
    def reference(self) -> str:
        return f'FunctionReference<"{self.kind}", "{self.visibility}", {self.args}, {self.returns}>'


def describe(path: str, fn: RegisteredFunction[Any, Any, Any]) -> FunctionType:
    """The TypeScript of one registered function's arguments and result."""
    handler = fn.handler
    writer = TypeWriter()
    try:
        hints = get_type_hints(handler, include_extras=True)
    except NameError as exc:
        raise TypeError(f"{path}: cannot resolve annotations: {exc}") from exc
    params = list(inspect.signature(handler).parameters.values())[1:]
    single = hints.get(params[0].name) if len(params) == 1 else None
    if isinstance(single, type) and issubclass(single, BaseModel):
        args = writer.model(single)  # the single model *is* the args object
    else:
        args = object_type(
            [
                (p.name, p.default is not p.empty, writer.ts_type(hints.get(p.name, Any)))
                for p in params
            ]
        )
    returns = writer.ts_type(hints["return"]) if "return" in hints else "any"
    return FunctionType(path, fn.kind.value, fn.visibility.value, args, returns)


def _tree(functions: Iterable[FunctionType]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for fn in functions:
        module, _, name = fn.path.partition(":")
        node = root
        for part in module.split("/"):
            child = node.setdefault(part, {})
            if isinstance(child, FunctionType):
                raise TypeError(f"{fn.path}: {module} is both a function and a module")
            node = child
        if name in node:
            raise TypeError(f"{fn.path}: a module of that name is beside it")
        node[name] = fn
    return root


def _render_tree(node: Mapping[str, Any], depth: int) -> list[str]:
    pad = "  " * depth
    lines = []
    for key in sorted(node):
        value = node[key]
        if isinstance(value, FunctionType):
            lines.append(f"{pad}{property_key(key)}: {value.reference};")
        else:
            lines.append(f"{pad}{property_key(key)}: {{")
            lines.extend(_render_tree(value, depth + 1))
            lines.append(f"{pad}}};")
    return lines


def _api_comment(name: str, visibility: str) -> str:
    return (
        "/**\n"
        f" * A utility for referencing Convex functions in your app's {visibility} API.\n"
        " *\n"
        " * Usage:\n"
        " * ```js\n"
        f" * const myFunctionReference = {name}.myModule.myFunction;\n"
        " * ```\n"
        " */\n"
    )


def api_dts(functions: list[FunctionType]) -> str:
    out = [
        _header("Generated `api` utility."),
        'import type { FunctionReference } from "convex/server";\n',
        'import type { Id } from "./dataModel.js";\n',
    ]
    for name, visibility in (("api", Visibility.PUBLIC), ("internal", Visibility.INTERNAL)):
        mine = [f for f in functions if f.visibility == visibility.value]
        body = _render_tree(_tree(mine), 1)
        out.append("\n" + _api_comment(name, visibility.value))
        members = "".join(f"{b}\n" for b in body)
        out.append(
            f"export declare const {name}: {{\n{members}}};\n"
            if body
            else f"export declare const {name}: {{}};\n"
        )
    return "".join(out)


def api_js() -> str:
    return (
        _header("Generated `api` utility.")
        + 'import { anyApi } from "convex/server";\n\n'
        + _api_comment("api", "public")
        + "export const api = anyApi;\n"
        + "export const internal = anyApi;\n"
    )


def data_model_dts(schema: Schema) -> str:
    """``DataModel`` as Convex's static data model writes it: each app table's document
    (with ``_id`` and ``_creationTime``), field paths and indexes."""
    out = [
        _header("Generated data model types."),
        "import type {\n  DocumentByName,\n  TableNamesInDataModel,\n  SystemTableNames,\n"
        '} from "convex/server";\n',
        'import type { GenericId } from "convex/values";\n\n',
        "/**\n * A type describing your Convex data model.\n */\n",
        "export type DataModel = {\n",
    ]
    writer = TypeWriter()
    for name in sorted(t for t in schema.tables if not t.startswith("_")):
        definition = schema.tables[name]
        system = [("_id", False, f'Id<"{name}">'), ("_creationTime", False, "number")]
        if definition.model is None:
            document = "any"
            paths = ["_creationTime", "_id"]
        else:
            fields = []
            for key, info in definition.model.model_fields.items():
                hint: Any = info.annotation
                if info.metadata:
                    hint = Annotated[(hint, *info.metadata)]
                fields.append((key, not info.is_required(), writer.ts_type(hint)))
            document = object_type(system + fields)
            nested = {".".join(p) for p in field_paths(definition.model) if p}
            paths = sorted({"_id", "_creationTime", *nested})
        indexes: dict[str, list[str]] = {"by_id": ["_id"], "by_creation_time": ["_creationTime"]}
        for index, declared in definition.indexes.items():
            indexes[index] = [*declared, "_creationTime"]
        out.append(f"  {property_key(name)}: {{\n")
        out.append(f"    document: {document};\n")
        listed = " | ".join(f"`{p}`" if "${" in p else f'"{p}"' for p in paths)
        out.append(f"    fieldPaths: {listed};\n")
        out.append("    indexes: {\n")
        for index, on in indexes.items():
            out.append(f"      {property_key(index)}: {list_literal(on)};\n")
        out.append("    };\n    searchIndexes: {};\n    vectorIndexes: {};\n  };\n")
    out.append("};\n\n")
    out.append(
        "/** The names of all of your Convex tables. */\n"
        "export type TableNames = TableNamesInDataModel<DataModel>;\n\n"
        "/** The type of a document stored in Convex. */\n"
        "export type Doc<TableName extends TableNames> = DocumentByName<DataModel, TableName>;\n\n"
        "/**\n"
        " * An identifier for a document in Convex: a string at run time, distinguished by\n"
        " * its table when type checking.\n"
        " */\n"
        "export type Id<TableName extends TableNames | SystemTableNames> = GenericId<TableName>;\n"
    )
    return "".join(out)


def list_literal(items: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def generate(
    schema: Schema, functions: Mapping[str, RegisteredFunction[Any, Any, Any]]
) -> dict[str, str]:
    """Every generated file's name and text."""
    described = [
        describe(path, fn) for path, fn in sorted(functions.items()) if not path.startswith("_")
    ]
    return {
        "api.js": api_js(),
        "api.d.ts": api_dts(described),
        "dataModel.d.ts": data_model_dts(schema),
    }


def write(directory: Path, files: Mapping[str, str]) -> list[str]:
    """Write the files that differ; the names of those written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        target = directory / name
        if target.exists() and target.read_text() == text:
            continue
        target.write_text(text)
        written.append(name)
    return written

// Tables: pick one, filter by one of its indexes, watch its rows live, edit them as JSON.

import { useMutation, useQuery } from "convex/react";
import { useEffect, useMemo, useState } from "react";

import { api } from "./admin.js";
import { ErrorText, JsonEditor, show, time } from "./ui.jsx";

const LIMIT = 100;

function columnsOf(rows) {
  const keys = new Set();
  for (const row of rows) for (const key of Object.keys(row)) keys.add(key);
  keys.delete("_id");
  keys.delete("_creationTime");
  return ["_id", ...[...keys].sort(), "_creationTime"];
}

function editable(row) {
  const { _id, _creationTime, ...fields } = row;
  return JSON.stringify(fields, null, 2);
}

function IndexFilter({ table, filter, setFilter }) {
  const index = table.indexes.find((i) => i.name === filter.index) ?? table.indexes[0];
  const [texts, setTexts] = useState([]);
  const [error, setError] = useState(null);
  useEffect(() => setTexts([]), [table.name, filter.index]);
  function apply(event) {
    event.preventDefault();
    const values = [];
    for (const text of texts) {
      if (text === undefined || text.trim() === "") break;
      try {
        values.push(JSON.parse(text));
      } catch {
        values.push(text); // a bare word is a string
      }
    }
    setError(null);
    setFilter({ index: index.name, values });
  }
  return (
    <form className="filter" onSubmit={apply} aria-label="Filter by index">
      <label>
        Index
        <select value={index.name} onChange={(e) => setFilter({ index: e.target.value, values: [] })}>
          {table.indexes.map((i) => (
            <option key={i.name} value={i.name}>
              {i.name}
              {i.fields.length ? ` (${i.fields.join(", ")})` : ""}
            </option>
          ))}
        </select>
      </label>
      {index.fields.map((field, position) => (
        <label key={field}>
          {field} =
          <input
            value={texts[position] ?? ""}
            placeholder="any"
            onChange={(e) => {
              const next = [...texts];
              next[position] = e.target.value;
              setTexts(next);
            }}
          />
        </label>
      ))}
      {index.fields.length ? <button>Filter</button> : null}
      <ErrorText error={error} />
    </form>
  );
}

function Row({ row, columns, onEdit, editing }) {
  return (
    <tr className={editing ? "selected" : undefined}>
      {columns.map((column) => (
        <td key={column} className={column === "_id" ? "mono" : undefined}>
          {column === "_creationTime" ? time(row[column]) : row[column] === undefined ? "" : typeof row[column] === "string" ? row[column] : show(row[column])}
        </td>
      ))}
      <td>
        <button className="small" onClick={() => onEdit(row._id)} aria-label={`Edit ${row._id}`}>
          Edit
        </button>
      </td>
    </tr>
  );
}

function Documents({ table }) {
  const [filter, setFilter] = useState({ index: "by_creation_time", values: [] });
  const [editing, setEditing] = useState(null); // a document id, "new", or null
  useEffect(() => {
    setFilter({ index: "by_creation_time", values: [] });
    setEditing(null);
  }, [table.name]);
  const rows = useQuery(api.documents, { table: table.name, index: filter.index, values: filter.values, limit: LIMIT });
  const replace = useMutation(api.replaceDocument);
  const insert = useMutation(api.insertDocument);
  const remove = useMutation(api.deleteDocument);
  const columns = useMemo(() => columnsOf(rows ?? []), [rows]);
  const current = rows?.find((row) => row._id === editing);

  return (
    <section className="documents" aria-label={`Table ${table.name}`}>
      <div className="section-head">
        <h2>{table.name}</h2>
        <span className="muted">{rows === undefined ? "loading…" : `${rows.length}${rows.length === LIMIT ? "+" : ""} documents, live`}</span>
        <span className="spacer" />
        <button onClick={() => setEditing("new")}>Add document</button>
      </div>
      <IndexFilter table={table} filter={filter} setFilter={setFilter} />
      {editing === "new" ? (
        <JsonEditor
          key="new"
          label={`New document in ${table.name}`}
          initial={"{\n  \n}"}
          saveLabel="Insert"
          onSave={async (document) => {
            await insert({ table: table.name, document });
            setEditing(null);
          }}
        >
          <button onClick={() => setEditing(null)}>Cancel</button>
        </JsonEditor>
      ) : null}
      {current ? (
        <JsonEditor
          key={current._id}
          label={`Document ${current._id}`}
          initial={editable(current)}
          onSave={async (document) => {
            await replace({ id: current._id, document });
            setEditing(null);
          }}
        >
          <button onClick={() => setEditing(null)}>Cancel</button>
          <button
            className="danger"
            onClick={async () => {
              if (!window.confirm(`Delete ${current._id}?`)) return;
              await remove({ id: current._id });
              setEditing(null);
            }}
          >
            Delete
          </button>
        </JsonEditor>
      ) : null}
      {rows && rows.length === 0 ? <p className="empty">No documents{filter.values.length ? " match this filter" : ""}.</p> : null}
      {rows && rows.length > 0 ? (
        <div className="table-scroll">
          <table className="grid">
            <thead>
              <tr>
                {columns.map((column) => (
                  <th key={column}>{column}</th>
                ))}
                <th />
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => (
                <Row key={row._id} row={row} columns={columns} onEdit={setEditing} editing={row._id === editing} />
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}

export function DataPage() {
  const tables = useQuery(api.tables, {});
  const [name, setName] = useState(null);
  const table = tables?.find((t) => t.name === name) ?? tables?.[0];
  if (tables === undefined) return <p className="loading">Loading tables…</p>;
  if (tables.length === 0) return <p className="empty">The app declares no tables.</p>;
  return (
    <div className="split">
      <nav className="sidebar" aria-label="Tables">
        <h3>Tables</h3>
        {tables.map((t) => (
          <button key={t.name} className={t.name === table.name ? "item active" : "item"} onClick={() => setName(t.name)}>
            {t.name}
          </button>
        ))}
      </nav>
      <Documents table={table} />
    </div>
  );
}

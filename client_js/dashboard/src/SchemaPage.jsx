// The schema as deployed: each table's document type and each index's state.

import { useQuery } from "convex/react";

import { api } from "./admin.js";

export function SchemaPage() {
  const schema = useQuery(api.schema, {});
  if (schema === undefined) return <p className="loading">Loading the schema…</p>;
  return (
    <section aria-label="Schema">
      <h2>Schema</h2>
      {schema.outdated.length ? (
        <p className="error" role="alert">
          A newer deploy changed {schema.outdated.join(", ")}: this server runs older code and may not write there.
        </p>
      ) : null}
      {schema.tables.map((table) => (
        <article className="card" key={table.name}>
          <header className="section-head">
            <h3>{table.name}</h3>
            {table.deployed ? null : <span className="state failed">not deployed</span>}
          </header>
          <pre className="mono type">{table.document}</pre>
          <table className="grid compact">
            <thead>
              <tr>
                <th>index</th>
                <th>fields</th>
                <th>state</th>
              </tr>
            </thead>
            <tbody>
              {table.indexes.map((index) => (
                <tr key={index.storage}>
                  <td className="mono">{index.name}</td>
                  <td className="mono">{index.fields.join(", ")}</td>
                  <td>
                    <span className={`state ${index.state}`}>{index.state}</span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </article>
      ))}
    </section>
  );
}

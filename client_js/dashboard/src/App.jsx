// The dashboard's frame: a navigation bar and one page at a time (the URL's hash names it).

import { useEffect, useState } from "react";

import { AuditPage } from "./AuditPage.jsx";
import { DataPage } from "./DataPage.jsx";
import { FunctionsPage } from "./FunctionsPage.jsx";
import { LogsPage } from "./LogsPage.jsx";
import { SchedulesPage } from "./SchedulesPage.jsx";
import { SchemaPage } from "./SchemaPage.jsx";

const PAGES = [
  { id: "data", label: "Data", Page: DataPage },
  { id: "functions", label: "Functions", Page: FunctionsPage },
  { id: "logs", label: "Logs", Page: LogsPage },
  { id: "schedules", label: "Schedules", Page: SchedulesPage },
  { id: "audit", label: "Audit log", Page: AuditPage },
  { id: "schema", label: "Schema", Page: SchemaPage },
];

function currentPage() {
  const id = window.location.hash.replace(/^#\/?/, "").split("/")[0];
  return PAGES.find((page) => page.id === id) ?? PAGES[0];
}

export function App({ adminKey, dev, signOut }) {
  const [page, setPage] = useState(currentPage);
  useEffect(() => {
    const follow = () => setPage(currentPage());
    window.addEventListener("hashchange", follow);
    return () => window.removeEventListener("hashchange", follow);
  }, []);
  const { Page } = page;
  return (
    <div className="shell">
      <header className="topbar">
        <strong className="brand">Dashboard</strong>
        <nav aria-label="Pages">
          {PAGES.map(({ id, label }) => (
            <a key={id} href={`#${id}`} aria-current={id === page.id ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span className="spacer" />
        {dev ? <span className="badge">dev</span> : null}
        {signOut ? (
          <button className="link" onClick={signOut}>
            Forget the key
          </button>
        ) : null}
      </header>
      <main className="page">
        <Page adminKey={adminKey} />
      </main>
    </div>
  );
}

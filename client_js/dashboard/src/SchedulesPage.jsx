// Scheduled functions (cancel the ones still to run) and the deployed crons with their runs.

import { useMutation, useQuery } from "convex/react";
import { useState } from "react";

import { api } from "./admin.js";
import { ErrorText, show, time } from "./ui.jsx";

const STATES = ["", "pending", "inProgress", "success", "failed", "canceled"];

function Jobs() {
  const [state, setState] = useState("");
  const jobs = useQuery(api.scheduled, state ? { state } : {});
  const cancel = useMutation(api.cancelScheduled);
  const cancelAll = useMutation(api.cancelAllScheduled);
  const [error, setError] = useState(null);
  const [note, setNote] = useState(null);
  const pending = (jobs ?? []).filter((job) => job.state.kind === "pending").length;
  return (
    <section aria-label="Scheduled functions">
      <div className="section-head">
        <h2>Scheduled functions</h2>
        <span className="spacer" />
        {note ? <span className="muted">{note}</span> : null}
        <button
          className="danger"
          disabled={pending === 0}
          onClick={async () => {
            if (!window.confirm("Cancel every pending scheduled function?")) return;
            setError(null);
            try {
              const count = await cancelAll({});
              setNote(`${count} canceled`);
            } catch (failure) {
              setError(failure);
            }
          }}
        >
          Cancel all pending
        </button>
        <label className="inline">
          State
          <select value={state} onChange={(e) => setState(e.target.value)}>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s || "any"}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorText error={error} />
      {jobs === undefined ? <p className="loading">Loading…</p> : null}
      {jobs?.length === 0 ? <p className="empty">No scheduled functions.</p> : null}
      {jobs?.length ? (
        <table className="grid">
          <thead>
            <tr>
              <th>function</th>
              <th>args</th>
              <th>scheduled for</th>
              <th>state</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {jobs.map((job) => (
              <tr key={job._id}>
                <td className="mono">{job.name}</td>
                <td className="mono">{show(job.args[0])}</td>
                <td>{time(job.scheduledTime)}</td>
                <td>
                  <span className={`state ${job.state.kind}`}>{job.state.kind}</span>
                  {job.state.error ? <span className="muted"> {job.state.error}</span> : null}
                </td>
                <td>
                  {job.state.kind === "pending" || job.state.kind === "inProgress" ? (
                    <button
                      className="small danger"
                      onClick={() => {
                        setError(null);
                        cancel({ id: job._id }).catch(setError);
                      }}
                    >
                      Cancel
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

function Crons() {
  const crons = useQuery(api.crons, {});
  return (
    <section aria-label="Cron jobs">
      <h2>Cron jobs</h2>
      {crons === undefined ? <p className="loading">Loading…</p> : null}
      {crons?.length === 0 ? <p className="empty">The app declares no crons (functions/crons.py).</p> : null}
      {crons?.map((cron) => (
        <article className="card cron" key={cron.name}>
          <header>
            <strong>{cron.name}</strong> <span className="mono">{cron.function}</span> <span className="muted">{show(cron.schedule)}</span>
          </header>
          <p>
            Next run {time(cron.nextRun)}
            {cron.prevRun ? `, last ${time(cron.prevRun)}` : ""} · <span className={`state ${cron.state}`}>{cron.state}</span>
          </p>
          {cron.runs.length ? (
            <ul className="runs">
              {cron.runs.map((run) => (
                <li key={run.scheduledTime}>
                  <span className={`state ${run.state}`}>{run.state}</span> {time(run.scheduledTime)}
                  {run.error ? <span className="muted"> {run.error}</span> : null}
                </li>
              ))}
            </ul>
          ) : null}
        </article>
      ))}
    </section>
  );
}

export function SchedulesPage() {
  return (
    <div className="stack">
      <Jobs />
      <Crons />
    </div>
  );
}

// The dialog's look. Every selector is under the `sv-` class prefix and wrapped in `:where()`
// (zero specificity), so nothing leaks onto the page and any app rule wins; the one exception
// is `[hidden]`, which must win over an app's `button {display: ...}`. The style element lives
// inside the dialog and leaves with it.
//
// Theme it with custom properties on any ancestor (or `:root`):
//   --sv-font, --sv-bg, --sv-fg, --sv-muted, --sv-border, --sv-accent, --sv-accent-fg,
//   --sv-danger, --sv-focus, --sv-radius, --sv-width, --sv-backdrop, --sv-shadow

export const CLASS_PREFIX = "sv-";

export const STYLES = `
:where(.sv-dialog){box-sizing:border-box;width:min(var(--sv-width,24rem),calc(100vw - 2rem));padding:1.5rem;border:1px solid var(--sv-border,#d0d4dc);border-radius:var(--sv-radius,.75rem);background:var(--sv-bg,#fff);color:var(--sv-fg,#1b1f27);font:var(--sv-font,15px/1.45 system-ui,sans-serif);box-shadow:var(--sv-shadow,0 1rem 3rem rgb(0 0 0/.25))}
:where(.sv-dialog)::backdrop{background:var(--sv-backdrop,rgb(15 18 25/.45))}
:where(.sv-dialog) :where(*){box-sizing:border-box;font:inherit}
:where(.sv-title){margin:0 0 .5rem;font-size:1.2em;font-weight:600}
:where(.sv-description){margin:0 0 1rem}
:where(.sv-status){margin:0 0 1rem;min-height:1.45em;color:var(--sv-muted,#5b6270)}
:where(.sv-status[data-kind=error]){color:var(--sv-danger,#b42318)}
:where(.sv-section){display:flex;flex-direction:column;gap:.5rem;margin:0}
:where(.sv-label){font-weight:500}
:where(.sv-input){width:100%;padding:.55rem .7rem;border:1px solid var(--sv-border,#d0d4dc);border-radius:calc(var(--sv-radius,.75rem)*.6);background:var(--sv-bg,#fff);color:inherit}
:where(.sv-input[aria-invalid=true]){border-color:var(--sv-danger,#b42318)}
:where(.sv-code,.sv-otp-num){letter-spacing:.35em;font-variant-numeric:tabular-nums}
:where(.sv-button){padding:.55rem 1rem;border:1px solid var(--sv-border,#d0d4dc);border-radius:calc(var(--sv-radius,.75rem)*.6);background:transparent;color:inherit;cursor:pointer}
:where(.sv-primary){border-color:var(--sv-accent,#2357d9);background:var(--sv-accent,#2357d9);color:var(--sv-accent-fg,#fff)}
:where(.sv-button[aria-disabled=true]){opacity:.55;cursor:not-allowed}
:where(.sv-dialog) :where(:focus-visible){outline:2px solid var(--sv-focus,var(--sv-accent,#2357d9));outline-offset:2px}
:where(.sv-wait){margin:0;color:var(--sv-muted,#5b6270);font-size:.9em}
:where(.sv-or){margin:1rem 0;text-align:center;color:var(--sv-muted,#5b6270)}
:where(.sv-link){background:none;border:0;padding:0;margin-top:.75rem;color:inherit;text-decoration:underline;cursor:pointer;font:inherit}
:where(.sv-actions){display:flex;justify-content:flex-end;margin-top:1.25rem}
.sv-dialog [hidden]{display:none!important}
@media (prefers-color-scheme:dark){
:where(.sv-dialog){background:var(--sv-bg,#1d2129);color:var(--sv-fg,#e8eaef);border-color:var(--sv-border,#3a404c)}
:where(.sv-input){background:var(--sv-bg,#1d2129);border-color:var(--sv-border,#3a404c)}
:where(.sv-status),:where(.sv-wait),:where(.sv-or){color:var(--sv-muted,#a4abb8)}
:where(.sv-status[data-kind=error]){color:var(--sv-danger,#ff8a80)}
}
`;

/**
 * The operator console's HTML, served as `GET /console`. Static markup only:
 * the script fills it in, so the page holds no data and no secret, and its
 * Content-Security-Policy can forbid inline script and style altogether.
 *
 * @module
 */

/**
 * The console page: a sign-in form, then the metrics table, the throughput
 * chart, the dead letters and the live tail. The `data-testid` attributes are
 * stable hooks for tests (issue #15); the layout around them may change.
 */
export const CONSOLE_HTML: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Event collector console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/console.css">
<script type="module" src="/console/console.js"></script>
</head>
<body>
<header>
<h1>Event collector console</h1>
<p class="status" id="status" role="status" aria-live="polite">Loading…</p>
<button type="button" class="secondary" id="sign-out" data-testid="sign-out" hidden>Sign out</button>
</header>
<main>
<section class="signin" id="signin" aria-labelledby="signin-title" hidden>
<h2 id="signin-title">Sign in</h2>
<p class="hint">Enter the collector's token (<code>EVENT_TRACKING_TOKEN</code>). It is kept in this tab only.</p>
<form id="signin-form" novalidate>
<label for="token">Token</label>
<input type="password" id="token" name="token" data-testid="token-input" autocomplete="current-password"
 spellcheck="false" required>
<button type="submit" data-testid="token-submit">Sign in</button>
</form>
<p class="error" id="auth-error" data-testid="auth-error" role="alert" hidden></p>
</section>
<div class="grid" id="console" hidden>
<section class="card" aria-labelledby="metrics-title">
<h2 id="metrics-title">Backends</h2>
<div class="scroll">
<table data-testid="metrics-table">
<caption id="metrics-caption">Counters per backend path, refreshed every second.</caption>
<thead><tr><th scope="col">Path</th><th scope="col">Received</th><th scope="col">Delivered</th>
<th scope="col">Failed</th><th scope="col">Dead-lettered</th><th scope="col">Queue depth</th></tr></thead>
<tbody id="metrics-body"></tbody>
</table>
</div>
</section>
<section class="card chart" aria-labelledby="chart-title">
<h2 id="chart-title">Throughput per branch</h2>
<div id="chart" data-testid="throughput-chart"></div>
<ul class="legend" id="legend" aria-label="Branches"></ul>
<p class="caption">Deliveries per second into each branch's backends (the <code>delivered</code> counter), over
the last 5 minutes.</p>
</section>
<section class="card" aria-labelledby="dead-title">
<h2 id="dead-title">Dead letters</h2>
<div id="dead-letters" data-testid="dead-letters" aria-live="polite"><p class="hint">Loading…</p></div>
</section>
<section class="card" aria-labelledby="tail-title">
<h2 id="tail-title">Live tail</h2>
<div class="tail-controls">
<label for="tail-filter">Filter</label>
<input type="text" id="tail-filter" data-testid="tail-filter" placeholder="edx\\.course\\..*" spellcheck="false"
 autocomplete="off" aria-describedby="tail-filter-hint tail-error">
<button type="button" class="secondary" id="tail-pause" data-testid="tail-pause" aria-pressed="false">Pause</button>
</div>
<p class="hint" id="tail-filter-hint">A regular expression matched at the start of event names (RegexFilter syntax),
applied by the collector; press Enter to apply. Empty: every event.</p>
<p class="error" id="tail-error" data-testid="tail-error" role="alert" hidden></p>
<p class="hint" id="tail-status" data-testid="tail-status" data-state="closed" aria-live="polite"></p>
<div class="tail-body">
<ol class="tail" id="tail-list" data-testid="tail-list" aria-label="Events, newest first"></ol>
<pre class="detail" id="tail-detail" data-testid="tail-detail" tabindex="0" aria-label="Selected event">Select an event to see its JSON.</pre>
</div>
</section>
</div>
</main>
</body>
</html>
`;

// Placeholder: lists groups from /api/groups. The real dashboard replaces this file.
fetch("/api/groups").then(r => r.json()).then(page => {
  const t = document.getElementById("groups");
  for (const g of page.groups) {
    const row = t.insertRow();
    for (const v of [g.group, g.state, g.members, g.total_lag, g.status]) {
      row.insertCell().textContent = String(v);
    }
  }
});

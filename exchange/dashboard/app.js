/* The exchange dashboard: reads /exchange/v1/monitor/* and /exchange/v1/assessment with the
 * user's API token (kept in sessionStorage only) and draws them with the vendored ECharts.
 * Every value from the server is put into the page as text (textContent), never as markup. */
(function () {
  "use strict";

  var TOKEN_KEY = "govdata.dashboard.token";
  var API = "exchange/v1";  // relative: the page is served at <base>/dashboard
  var TZ = "Asia/Shanghai";
  var charts = {};
  var me = null;
  var departmentsLoaded = false;
  var lastQuery = null;
  var generation = 0;  // the latest query: answers to an earlier one are dropped, not drawn over it

  var STATE_NAMES = {
    fresh: "正常", late: "滞后", never: "从未发布", no_cycle: "无固定周期",
    on_time: "未到期", due_soon: "即将到期", overdue: "已逾期",
    pending: "待发送", sent: "已发送", failed: "失败"
  };
  var EVENT_NAMES = {  // exchange.notify.EVENTS
    "application.submitted": "收到申请", "application.decided": "申请已办结", "grant.revoked": "授权已撤销",
    "version.delivered": "新版本已交付", "delivery.failed": "交付失败", "objection.raised": "收到异议",
    "objection.answered": "异议已答复", "dataset.stale": "资源未按期更新", "review.overdue": "审核超期",
    "run.failed": "治理任务失败"
  };
  var MEASURES = [
    ["completeness", "目录完整率"], ["coverage", "目录发布率"], ["timeliness", "按时更新率"],
    ["response", "申请按时办结率"], ["quality", "数据质量"], ["objections", "异议按时答复率"], ["usage", "资源使用率"]
  ];

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") { node.textContent = attrs[k]; } else if (k === "class") { node.className = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
      });
    }
    (children || []).forEach(function (c) { if (c != null) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); } });
    return node;
  }

  function fmtInt(n) { return n == null ? "–" : Number(n).toLocaleString("zh-CN"); }
  function fmtNum(n, digits) { return n == null ? "–" : Number(n).toFixed(digits == null ? 1 : digits); }
  function fmtPct(x) { return x == null ? "–" : (x * 100).toFixed(1) + "%"; }
  function fmtTime(iso) {
    if (!iso) { return "–"; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso); }
    return d.toLocaleString("zh-CN", { timeZone: TZ, hour12: false, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  }
  function localToday() {
    // The date in Asia/Shanghai (UTC+8, no daylight saving) as YYYY-MM-DD.
    return new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
  }
  function addDays(day, n) {
    var d = new Date(day + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }

  // --- the API ----------------------------------------------------------------------------------

  function token() { return window.sessionStorage.getItem(TOKEN_KEY); }

  function ApiError(status, body) {
    this.status = status;
    this.message = (body && body.error) || ("HTTP " + status);
    this.hint = body && body.hint;
  }

  function call(path, params, asBlob) {
    var query = new URLSearchParams();
    Object.keys(params || {}).forEach(function (k) { if (params[k] != null && params[k] !== "") { query.set(k, params[k]); } });
    var url = API + path + (query.toString() ? "?" + query.toString() : "");
    return fetch(url, { headers: { Authorization: "Bearer " + token(), Accept: asBlob ? "*/*" : "application/json" }, credentials: "omit", cache: "no-store" })
      .then(function (r) {
        if (r.ok) { return asBlob ? r.blob() : r.json(); }
        return r.json().catch(function () { return null; }).then(function (body) { throw new ApiError(r.status, body); });
      });
  }

  // --- login --------------------------------------------------------------------------------------

  function showLogin(message) {
    $("board").hidden = true;
    $("who").hidden = true;
    $("login").hidden = false;
    var err = $("login-error");
    err.hidden = !message;
    err.textContent = message || "";
    document.body.setAttribute("data-state", "login");
    $("token").focus();
  }

  function logout(message) {
    window.sessionStorage.removeItem(TOKEN_KEY);
    generation++;  // answers still on their way belong to the old login
    me = null;
    departmentsLoaded = false;
    Object.keys(charts).forEach(function (k) { charts[k].dispose(); });
    charts = {};
    showLogin(message);
  }

  function start() {
    if (!token()) { showLogin(); return; }
    document.body.setAttribute("data-state", "loading");
    call("/me").then(function (who) {
      if (who.scopes.indexOf("monitor:read") < 0) {
        logout("此令牌没有 monitor:read 权限（角色：" + who.role + "）。请使用部门审核人、市级管理员或审计人员的令牌。");
        return;
      }
      me = who;
      $("login").hidden = true;
      $("board").hidden = false;
      $("who").hidden = false;
      $("who-name").textContent = who.name + "（" + roleName(who.role) + "）";
      // The department filter: every department for the city (filled from the summary), else its own only.
      var select = $("f-department");
      select.textContent = "";
      select.appendChild(who.department ? el("option", { value: who.department, text: who.department }) : el("option", { value: "", text: "全部部门" }));
      select.disabled = !!who.department;
      refresh();
    }).catch(function (e) {
      logout(e.status === 401 ? "令牌无效、已撤销或已过期：" + e.message : "无法连接服务：" + e.message);
    });
  }

  function roleName(role) {
    return { staff: "部门工作人员", dept_admin: "部门审核人", city_admin: "市级管理员", auditor: "审计人员" }[role] || role;
  }

  // --- filters ------------------------------------------------------------------------------------

  function filters() {
    var range = $("f-range").value;
    var until = addDays(localToday(), 1);
    var since;
    if (range === "custom") {
      since = $("f-since").value;
      var to = $("f-until").value;
      if (!since || !to) { throw new Error("请填写自定义时间段的起止日期"); }
      if (to < since) { throw new Error("止日期早于起日期"); }
      until = addDays(to, 1);
    } else if (range === "month" || range === "last-month") {
      var now = localToday();
      var first = now.slice(0, 8) + "01";
      if (range === "month") {
        since = first;
      } else {
        until = first;
        since = addDays(first, -1).slice(0, 8) + "01";
      }
    } else if (range === "quarter") {
      var today = localToday();
      var month = Number(today.slice(5, 7));
      var first = Math.floor((month - 1) / 3) * 3 + 1;
      since = today.slice(0, 4) + "-" + (first < 10 ? "0" : "") + first + "-01";
    } else {
      since = addDays(until, -Number(range));
    }
    return { since: since, until: until, department: $("f-department").value, side: $("f-side").value };
  }

  function showError(e) {
    var box = $("board-error");
    box.hidden = false;
    box.textContent = (e.message || String(e)) + (e.hint ? "\n→ " + e.hint : "");
  }

  function refresh() {
    var f;
    try { f = filters(); } catch (e) { showError(e); return; }
    $("board-error").hidden = true;
    document.body.setAttribute("data-state", "loading");
    lastQuery = f;
    $("period").textContent = "时间段：" + f.since + " 至 " + addDays(f.until, -1);
    var common = { since: f.since, until: f.until, department: f.department };
    var sided = { since: f.since, until: f.until, department: f.department, side: f.side };
    var gen = ++generation;
    function current(render) { return function (data) { if (gen === generation) { render(data); } }; }
    var jobs = [
      call("/monitor/summary", sided).then(current(renderSummary)),
      call("/monitor/deliveries", sided).then(current(renderDeliveries)),
      call("/monitor/latency", sided).then(current(renderLatency)),
      call("/monitor/api-calls", sided).then(current(renderApi)),
      call("/monitor/applications", sided).then(current(renderPending)),
      call("/monitor/consumers", common).then(current(renderConsumers)),
      call("/monitor/freshness", common).then(current(renderFreshness)),
      call("/monitor/notifications", common).then(current(renderNotifications)),
      call("/monitor/alerts", Object.assign({ limit: 30 }, common)).then(current(renderAlerts)),
      call("/monitor/audit", Object.assign({ limit: 30 }, common)).then(current(renderAudit)),
      call("/assessment", common).then(current(renderAssessment))
    ];
    Promise.all(jobs).then(function () {
      if (gen !== generation) { return; }
      document.body.setAttribute("data-state", "ready");
      document.body.setAttribute("data-query", JSON.stringify(f));
    }).catch(function (e) {
      if (gen !== generation) { return; }
      if (e.status === 401) { logout("登录已失效：" + e.message); return; }
      showError(e);
      document.body.setAttribute("data-state", "error");
    });
  }

  // --- rendering helpers ---------------------------------------------------------------------------

  function chart(id, option) {
    var node = $(id);
    var c = charts[id];
    if (!c) {
      c = window.echarts.init(node, null, { renderer: "svg" });
      charts[id] = c;
    }
    var base = {
      aria: { enabled: true },
      animation: false,
      textStyle: { fontFamily: getComputedStyle(document.documentElement).fontFamily },
      tooltip: { trigger: "axis" },
      grid: { left: 56, right: 56, top: 36, bottom: 32 }
    };
    c.setOption(Object.assign(base, option), true);
    node.setAttribute("data-rendered", "true");
    return c;
  }

  function table(containerId, headers, rows, rowClass) {
    var box = $(containerId);
    box.textContent = "";
    if (!rows.length) { box.appendChild(el("p", { class: "empty", text: "无数据" })); return; }
    var head = el("tr", null, headers.map(function (h) { return el("th", { scope: "col", text: h[0] }); }));
    var body = el("tbody", null, rows.map(function (r) {
      var tr = el("tr", rowClass ? { class: rowClass(r) || "" } : null);
      headers.forEach(function (h) {
        var value = h[1](r);
        var td = el("td", { class: h[2] || "" });
        if (value instanceof Node) { td.appendChild(value); } else { td.textContent = value == null ? "–" : String(value); }
        tr.appendChild(td);
      });
      return tr;
    }));
    box.appendChild(el("table", null, [el("thead", null, [head]), body]));
  }

  function badge(state) { return el("span", { class: "state " + state, text: STATE_NAMES[state] || state }); }
  function dayLabel(day) { return day.slice(5); }

  // --- sections ---------------------------------------------------------------------------------------

  function renderSummary(s) {
    $("k-deliveries").textContent = fmtInt(s.deliveries);
    $("k-deliveries-sub").textContent = "成功 " + fmtInt(s.deliveries_succeeded) + " · 失败 " + fmtInt(s.deliveries_failed);
    $("k-rows").textContent = fmtInt(s.rows_delivered);
    $("k-rows-sub").textContent = "其中接口服务 " + fmtInt(s.api_rows) + " 行";
    $("k-failure").textContent = fmtPct(s.failure_rate);
    $("k-failure-sub").textContent = s.deliveries ? "按交付次数" : "无交付";
    $("k-api").textContent = fmtInt(s.api_calls);
    $("k-api-sub").textContent = "失败 " + fmtInt(s.api_calls_failed);
    $("k-latency").textContent = fmtNum(s.delivery_latency.p50, 0) + " / " + fmtNum(s.delivery_latency.p95, 0);
    var p = s.pending_applications;
    $("k-pending").textContent = fmtInt(p.on_time + p.due_soon + p.overdue);
    $("k-pending-sub").textContent = "逾期 " + p.overdue + " · 即将到期 " + p.due_soon;
    $("k-late").textContent = fmtInt(s.freshness.late);
    $("k-late-sub").textContent = "正常 " + s.freshness.fresh + " · 从未发布 " + s.freshness.never;
    $("k-notes").textContent = fmtInt(s.notifications_failed);
    if (!departmentsLoaded) {
      var select = $("f-department");
      if (me && me.department) {
        // A department user sees its own department only: name it.
        s.departments.forEach(function (d) { if (d.uscc === me.department) { select.options[0].textContent = d.name; } });
      } else {
        s.departments.forEach(function (d) { select.appendChild(el("option", { value: d.uscc, text: d.name })); });
      }
      departmentsLoaded = true;
    }
  }

  function renderDeliveries(d) {
    var days = d.per_day.map(function (x) { return dayLabel(x.day); });
    chart("chart-deliveries", {
      legend: { top: 0 },
      xAxis: { type: "category", data: days },
      yAxis: [{ type: "value", name: "次数", minInterval: 1 }, { type: "value", name: "行数" }],
      series: [
        { name: "成功", type: "bar", stack: "n", data: d.per_day.map(function (x) { return x.succeeded; }), itemStyle: { color: "#2f855a" } },
        { name: "失败", type: "bar", stack: "n", data: d.per_day.map(function (x) { return x.failed; }), itemStyle: { color: "#c53030" } },
        { name: "进行中", type: "bar", stack: "n", data: d.per_day.map(function (x) { return x.running; }), itemStyle: { color: "#a0aec0" } },
        { name: "交付行数", type: "line", yAxisIndex: 1, data: d.per_day.map(function (x) { return x.rows; }), itemStyle: { color: "#1f6feb" } }
      ]
    });
    table("table-deliveries", [
      ["日期", function (x) { return x.day; }], ["成功", function (x) { return fmtInt(x.succeeded); }, "num"],
      ["失败", function (x) { return fmtInt(x.failed); }, "num"], ["进行中", function (x) { return fmtInt(x.running); }, "num"],
      ["交付行数", function (x) { return fmtInt(x.rows); }, "num"]
    ], d.per_day.filter(function (x) { return x.deliveries > 0; }));
    table("table-failures", [
      ["时间", function (x) { return fmtTime(x.at); }], ["资源", function (x) { return x.entry_name || x.entry; }],
      ["使用方", function (x) { return x.subscriber_name || x.subscriber; }], ["方式", function (x) { return x.mode; }],
      ["版本", function (x) { return x.version; }, "num"], ["尝试", function (x) { return x.attempts; }, "num"],
      ["错误", function (x) { return x.error; }, "wrap"]
    ], d.latest_failures);
  }

  function renderLatency(l) {
    var days = l.per_day.map(function (x) { return dayLabel(x.day); });
    function series(name, key, color, dashed) {
      return { name: name, type: "line", connectNulls: true, data: l.per_day.map(function (x) { return x[key]; }),
        itemStyle: { color: color }, lineStyle: dashed ? { type: "dashed" } : undefined };
    }
    chart("chart-latency", {
      legend: { top: 0 },
      xAxis: { type: "category", data: days },
      yAxis: { type: "value", name: "ms" },
      series: [series("交付 p50", "delivery_p50", "#1f6feb"), series("交付 p95", "delivery_p95", "#1f6feb", true),
        series("接口 p50", "api_p50", "#b7791f"), series("接口 p95", "api_p95", "#b7791f", true)]
    });
    table("table-latency", [
      ["日期", function (x) { return x.day; }], ["交付 p50", function (x) { return fmtNum(x.delivery_p50); }, "num"],
      ["交付 p95", function (x) { return fmtNum(x.delivery_p95); }, "num"], ["接口 p50", function (x) { return fmtNum(x.api_p50); }, "num"],
      ["接口 p95", function (x) { return fmtNum(x.api_p95); }, "num"]
    ], l.per_day.filter(function (x) { return x.delivery_count || x.api_count; }));
  }

  function renderApi(a) {
    chart("chart-api", {
      legend: { top: 0 },
      xAxis: { type: "category", data: a.per_day.map(function (x) { return dayLabel(x.day); }) },
      yAxis: { type: "value", name: "次数", minInterval: 1 },
      series: [
        { name: "成功", type: "bar", stack: "c", data: a.per_day.map(function (x) { return x.succeeded; }), itemStyle: { color: "#2f855a" } },
        { name: "失败", type: "bar", stack: "c", data: a.per_day.map(function (x) { return x.failed; }), itemStyle: { color: "#c53030" } }
      ]
    });
    table("table-api", [
      ["调用方", function (x) { return x.name || x.department || "（未知）"; }], ["调用", function (x) { return fmtInt(x.calls); }, "num"],
      ["成功率", function (x) { return fmtPct(x.success_rate); }, "num"], ["行数", function (x) { return fmtInt(x.rows); }, "num"],
      ["平均延迟 ms", function (x) { return fmtNum(x.mean_latency_ms); }, "num"], ["最近调用", function (x) { return fmtTime(x.last_call_at); }]
    ], a.callers);
  }

  function renderPending(p) {
    var colors = { on_time: "#2f855a", due_soon: "#b7791f", overdue: "#c53030" };
    chart("chart-pending", {
      legend: { top: 0 },
      xAxis: { type: "category", name: "工作日", data: p.by_age.map(function (b) { return b.age; }) },
      yAxis: { type: "value", name: "件", minInterval: 1 },
      series: ["on_time", "due_soon", "overdue"].map(function (s) {
        return { name: STATE_NAMES[s], type: "bar", stack: "s", data: p.by_age.map(function (b) { return b[s]; }), itemStyle: { color: colors[s] } };
      })
    });
    table("table-pending", [
      ["申请", function (x) { return "#" + x.id; }], ["资源", function (x) { return x.entry_name || x.entry; }],
      ["申请部门", function (x) { return x.applicant_name || x.applicant; }],
      ["已等待工作日", function (x) { return x.age_working_days; }, "num"], ["办理时限", function (x) { return fmtTime(x.due_at); }],
      ["状态", function (x) { return badge(x.state); }],
      ["剩余/逾期工作日", function (x) { return x.state === "overdue" ? (x.working_days_overdue == null ? "逾期" : "逾期 " + x.working_days_overdue) : x.working_days_left; }, "num"]
    ], p.applications, function (x) { return x.state; });
    $("pending-note").textContent = p.total > p.applications.length ? "（显示最紧急的 " + p.applications.length + " 件，共 " + p.total + " 件）" : "";
  }

  function renderConsumers(c) {
    var top = c.consumers.slice().reverse();
    chart("chart-consumers", {
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      grid: { left: 150, right: 40, top: 24, bottom: 24 },
      legend: { top: 0 },
      xAxis: { type: "value", name: "行数" },
      yAxis: { type: "category", data: top.map(function (x) { return x.name || x.department; }), axisLabel: { width: 140, overflow: "truncate" } },
      series: [
        { name: "文件/库表交付行数", type: "bar", stack: "r", data: top.map(function (x) { return x.rows; }), itemStyle: { color: "#1f6feb" } },
        { name: "接口行数", type: "bar", stack: "r", data: top.map(function (x) { return x.api_rows; }), itemStyle: { color: "#b7791f" } }
      ]
    });
    table("table-consumers", [
      ["使用方", function (x) { return x.name || x.department; }], ["文件/库表交付", function (x) { return fmtInt(x.deliveries); }, "num"],
      ["交付行数", function (x) { return fmtInt(x.rows); }, "num"], ["接口调用", function (x) { return fmtInt(x.api_calls); }, "num"],
      ["接口行数", function (x) { return fmtInt(x.api_rows); }, "num"], ["资源数", function (x) { return fmtInt(x.resources); }, "num"]
    ], c.consumers);
  }

  function lateText(hours) {
    if (hours == null) { return ""; }
    if (hours < 48) { return hours.toFixed(1) + " 小时"; }
    return (hours / 24).toFixed(1) + " 天";
  }

  function renderFreshness(f) {
    table("table-freshness", [
      ["状态", function (x) { return badge(x.state); }], ["资源", function (x) { return x.name; }],
      ["提供方", function (x) { return x.department_name; }], ["更新周期", function (x) { return x.update_cycle; }],
      ["最新版本", function (x) { return x.last_version == null ? "–" : "v" + x.last_version; }, "num"],
      ["发布时间", function (x) { return fmtTime(x.last_published_at); }], ["应更新于", function (x) { return fmtTime(x.expected_by); }],
      ["滞后", function (x) { return lateText(x.late_hours); }, "num"]
    ], f.resources, function (x) { return x.state; });
  }

  function renderNotifications(n) {
    var box = $("note-counts");
    box.textContent = "";
    [["待发送", n.counts.pending], ["已发送", n.counts.sent], ["失败", n.counts.failed]].forEach(function (pair, i) {
      if (i) { box.appendChild(document.createTextNode(" · ")); }
      box.appendChild(document.createTextNode(pair[0] + " "));
      box.appendChild(el("b", { text: fmtInt(pair[1]) }));
    });
    table("table-note-events", [
      ["事件", function (x) { return EVENT_NAMES[x.event] ? EVENT_NAMES[x.event] + "（" + x.event + "）" : x.event; }],
      ["合计", function (x) { return fmtInt(x.total); }, "num"], ["已发送", function (x) { return fmtInt(x.sent); }, "num"],
      ["失败", function (x) { return fmtInt(x.failed); }, "num"]
    ], n.by_event);
    var columns = [
      ["时间", function (x) { return fmtTime(x.created_at); }], ["部门", function (x) { return x.department_name || x.department; }],
      ["事件", function (x) { return x.event; }], ["状态", function (x) { return badge(x.status); }],
      ["尝试", function (x) { return x.attempts; }, "num"],
      ["结果", function (x) { return (x.last_status ? "HTTP " + x.last_status + " " : "") + (x.last_error || (x.status === "sent" ? "已送达" : "")); }, "wrap"]
    ];
    table("table-notes", columns, n.latest_failures, function (x) { return x.status; });
    table("table-notes-latest", columns, n.latest, function (x) { return x.status; });
  }

  function renderAlerts(a) {
    var box = $("alert-counts");
    box.textContent = "";
    a.counts.forEach(function (c, i) {
      if (i) { box.appendChild(document.createTextNode(" · ")); }
      box.appendChild(document.createTextNode(c.name + " "));
      box.appendChild(el("b", { text: fmtInt(c.count), "data-kind": c.kind }));
    });
    table("table-alerts", [
      ["时间", function (x) { return fmtTime(x.raised_at); }], ["类型", function (x) { return x.kind_name; }],
      ["部门", function (x) { return x.department_name || x.department || "市级平台"; }],
      ["来源", function (x) { return x.source === "airflow" ? "Airflow" : "巡检"; }],
      ["内容", function (x) { return x.message; }, "wrap"]
    ], a.latest);
  }

  function renderAudit(a) {
    table("table-audit", [
      ["序号", function (x) { return x.seq; }, "num"], ["时间", function (x) { return fmtTime(x.at); }],
      ["操作人", function (x) { return x.actor; }], ["动作", function (x) { return x.action; }],
      ["对象", function (x) { return x.subject; }, "wrap"]
    ], a.events);
  }

  function renderAssessment(r) {
    var scored = r.departments.filter(function (d) { return d.score != null; });
    chart("chart-assessment", {
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      grid: { left: 56, right: 24, top: 24, bottom: 48 },
      xAxis: { type: "category", data: scored.map(function (d) { return d.name; }), axisLabel: { interval: 0, width: 120, overflow: "truncate" } },
      yAxis: { type: "value", name: "总分", max: 100 },
      series: [{ name: "总分", type: "bar", data: scored.map(function (d) { return d.score; }), itemStyle: { color: "#1f6feb" }, label: { show: true, position: "top" } }]
    });
    var headers = [["排名", function (d) { return d.rank; }, "num"], ["部门", function (d) { return d.name; }],
      ["总分", function (d) { return fmtNum(d.score); }, "num"]];
    MEASURES.forEach(function (m) {
      headers.push([m[1], function (d) {
        var s = d.measures[m[0]].score;
        return m[0] === "quality" ? fmtNum(s == null ? null : s * 100) : fmtPct(s);
      }, "num"]);
    });
    table("table-assessment", headers, r.departments.slice().sort(function (a, b) { return (a.rank || 999) - (b.rank || 999); }));
  }

  function exportXlsx() {
    if (!lastQuery) { return; }
    var q = { since: lastQuery.since, until: lastQuery.until, department: lastQuery.department };
    call("/assessment.xlsx", q, true).then(function (blob) {
      var link = el("a", { href: URL.createObjectURL(blob), download: "考核-" + q.since + "_" + addDays(q.until, -1) + ".xlsx" });
      document.body.appendChild(link);
      link.click();
      setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
    }).catch(showError);
  }

  // --- wiring ---------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", function () {
    $("login-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var value = $("token").value.trim();
      if (!value) { return; }
      window.sessionStorage.setItem(TOKEN_KEY, value);
      $("token").value = "";
      start();
    });
    $("logout").addEventListener("click", function () { logout(); });
    $("filters").addEventListener("submit", function (ev) { ev.preventDefault(); refresh(); });
    ["f-department", "f-side"].forEach(function (id) { $(id).addEventListener("change", refresh); });
    $("f-range").addEventListener("change", function () {
      var custom = $("f-range").value === "custom";
      $("f-custom").hidden = !custom;
      if (custom) {
        if (!$("f-until").value) { $("f-until").value = localToday(); }
        if (!$("f-since").value) { $("f-since").value = addDays(localToday(), -29); }
      } else {
        refresh();
      }
    });
    $("export").addEventListener("click", exportXlsx);
    window.addEventListener("resize", function () { Object.keys(charts).forEach(function (k) { charts[k].resize(); }); });
    if (!window.echarts) {
      showLogin("图表组件未能加载（dashboard/assets/vendor/echarts.common.min.js）。");
      return;
    }
    start();
  });
})();

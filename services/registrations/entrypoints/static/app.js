/* The volunteers' page: keep activities, tick who came to a session, upload a spreadsheet.
 *
 * No build step, no framework, no third-party code. Names never leave the device: the list of
 * names and participant numbers lives in this browser's localStorage (export/import as a file
 * moves it to another device) and only the number, neighbourhood and age band are sent.
 * The key lives in this tab's sessionStorage only. Text from the server or from files is put
 * in with textContent, never parsed as markup.
 */
(function () {
  "use strict";

  const TEXTS = {
    nl: {
      "skip": "Naar de inhoud",
      "kicker": "Samen naar verbinding",
      "title": "Aanwezigheid invoeren",
      "lang.switch": "English",
      "signout": "Afmelden",
      "signin.heading": "Inloggen",
      "signin.explain": "Vul de sleutel in die u van de coördinator van uw organisatie kreeg. De sleutel blijft alleen in dit tabblad bewaard.",
      "signin.label": "Sleutel",
      "signin.submit": "Inloggen",
      "signin.empty": "Vul de sleutel in.",
      "signin.rejected": "Deze sleutel wordt niet herkend of is ingetrokken. Vraag de coördinator om een nieuwe sleutel.",
      "signin.forbidden": "Met deze sleutel kunt u geen activiteiten en aanwezigheid bijhouden. Vraag de coördinator om een sleutel voor vrijwilligers.",
      "nav.label": "Onderdelen",
      "nav.session": "Bijeenkomst",
      "nav.people": "Deelnemers",
      "nav.activities": "Activiteiten",
      "nav.upload": "Lijst uploaden",
      "session.heading": "Bijeenkomst invullen",
      "session.explain": "Kies de activiteit, de datum en de begintijd. Zet bij iedereen die er was 'Aanwezig'. Wie zich had aangemeld maar niet kwam, zet u op 'Afwezig'.",
      "session.activity": "Activiteit",
      "session.choose": "Kies een activiteit",
      "session.date": "Datum",
      "session.time": "Begintijd",
      "session.people": "Wie was er?",
      "session.empty": "Er staan nog geen deelnemers op dit apparaat. Voeg ze toe bij 'Deelnemers'.",
      "session.present": "Aanwezig",
      "session.absent": "Afwezig",
      "session.none": "Niet verwacht",
      "session.save": "Opslaan",
      "session.need.activity": "Kies de activiteit.",
      "session.need.date": "Vul de datum in.",
      "session.need.time": "Vul de begintijd in.",
      "session.need.people": "Zet bij minstens één deelnemer 'Aanwezig' of 'Afwezig'.",
      "people.heading": "Deelnemers op dit apparaat",
      "people.privacy": "Namen blijven op dit apparaat. Naar de server gaan alleen het nummer, de wijk en de leeftijdsgroep.",
      "people.name": "Naam",
      "people.number": "Deelnemernummer",
      "people.number.hint": "Uw eigen nummer, met minstens één cijfer.",
      "people.neighbourhood": "Wijk",
      "people.age": "Leeftijdsgroep",
      "people.add": "Toevoegen",
      "people.remove": "Verwijderen",
      "people.removeLabel": "{name} verwijderen",
      "people.export": "Lijst bewaren als bestand",
      "people.import": "Lijst openen uit bestand",
      "people.need.name": "Vul een naam in (die blijft op dit apparaat).",
      "people.need.number": "Een deelnemernummer heeft minstens één cijfer en geen spaties.",
      "people.taken": "Dit nummer staat al in de lijst (bij {name}).",
      "people.imported": "{count} deelnemers geladen uit het bestand.",
      "people.badfile": "Dit bestand is geen deelnemerslijst van deze pagina.",
      "activities.heading": "Activiteiten",
      "activities.explain": "De activiteiten van uw organisatie. Voeg een nieuwe toe of wijzig een bestaande.",
      "activities.col.title": "Naam",
      "activities.col.code": "Code",
      "activities.col.category": "Soort",
      "activities.col.active": "Actief",
      "activities.col.edit": "Wijzigen",
      "activities.edit": "Wijzigen",
      "activities.editLabel": "{title} wijzigen",
      "activities.yes": "ja",
      "activities.no": "nee",
      "activities.none": "Nog geen activiteiten.",
      "activities.new": "Nieuwe activiteit",
      "activities.change": "Activiteit wijzigen",
      "activities.title": "Naam",
      "activities.code": "Code",
      "activities.code.hint": "Wordt gemaakt uit de naam. Zonder spaties.",
      "activities.category": "Soort",
      "activities.neighbourhood": "Wijk",
      "activities.connection": "Bedoeld om mensen te ontmoeten of eenzaamheid te voorkomen",
      "activities.active": "De activiteit loopt nog",
      "activities.save": "Activiteit opslaan",
      "activities.need.title": "Vul de naam in.",
      "activities.need.code": "Een code heeft geen spaties of schuine strepen (/).",
      "activities.saved": "Activiteit '{title}' is opgeslagen.",
      "upload.heading": "Lijst uploaden",
      "upload.explain": "Houdt u de aanwezigheid bij in Excel? Download het sjabloon, vul het in en upload het hier. Hetzelfde bestand nog eens uploaden kan geen kwaad.",
      "upload.tpl.attendance.xlsx": "Sjabloon aanwezigheid (Excel)",
      "upload.tpl.attendance.csv": "Sjabloon aanwezigheid (CSV)",
      "upload.tpl.activities.xlsx": "Sjabloon activiteiten (Excel)",
      "upload.tpl.activities.csv": "Sjabloon activiteiten (CSV)",
      "upload.kind": "Wat staat er in het bestand?",
      "upload.kind.attendance": "Aanwezigheid",
      "upload.kind.activities": "Activiteiten",
      "upload.file": "Bestand (Excel .xlsx of CSV)",
      "upload.partial": "Sla de goede regels op, ook als andere regels een probleem hebben",
      "upload.submit": "Uploaden",
      "upload.need.file": "Kies eerst een bestand.",
      "report.row": "Rij",
      "report.column": "Kolom",
      "report.problem": "Wat is er mis",
      "report.caption": "Problemen in het bestand",
      "report.file": "hele bestand",
      "error.network": "De server is niet bereikbaar. Probeer het zo nog eens.",
      "error.server": "Er ging iets mis ({status}). Probeer het later nog eens.",
      "error.expired": "Uw sleutel werkt niet meer. Log opnieuw in.",
    },
    en: {
      "skip": "Skip to content",
      "kicker": "Samen naar verbinding",
      "title": "Record attendance",
      "lang.switch": "Nederlands",
      "signout": "Sign out",
      "signin.heading": "Sign in",
      "signin.explain": "Enter the key you got from your organisation's coordinator. The key is kept in this tab only.",
      "signin.label": "Key",
      "signin.submit": "Sign in",
      "signin.empty": "Enter the key.",
      "signin.rejected": "This key is not recognised or was revoked. Ask the coordinator for a new key.",
      "signin.forbidden": "This key cannot keep activities and attendance. Ask the coordinator for a volunteer key.",
      "nav.label": "Sections",
      "nav.session": "Session",
      "nav.people": "Participants",
      "nav.activities": "Activities",
      "nav.upload": "Upload a list",
      "session.heading": "Record a session",
      "session.explain": "Choose the activity, the date and the start time. Mark everybody who came 'Present'. Whoever signed up but did not come is 'Absent'.",
      "session.activity": "Activity",
      "session.choose": "Choose an activity",
      "session.date": "Date",
      "session.time": "Start time",
      "session.people": "Who came?",
      "session.empty": "There are no participants on this device yet. Add them under 'Participants'.",
      "session.present": "Present",
      "session.absent": "Absent",
      "session.none": "Not expected",
      "session.save": "Save",
      "session.need.activity": "Choose the activity.",
      "session.need.date": "Fill in the date.",
      "session.need.time": "Fill in the start time.",
      "session.need.people": "Mark at least one participant 'Present' or 'Absent'.",
      "people.heading": "Participants on this device",
      "people.privacy": "Names stay on this device. Only the number, neighbourhood and age band are sent to the server.",
      "people.name": "Name",
      "people.number": "Participant number",
      "people.number.hint": "Your own number, with at least one digit.",
      "people.neighbourhood": "Neighbourhood",
      "people.age": "Age band",
      "people.add": "Add",
      "people.remove": "Remove",
      "people.removeLabel": "Remove {name}",
      "people.export": "Save the list as a file",
      "people.import": "Open a list from a file",
      "people.need.name": "Fill in a name (it stays on this device).",
      "people.need.number": "A participant number has at least one digit and no spaces.",
      "people.taken": "This number is already on the list (for {name}).",
      "people.imported": "{count} participants loaded from the file.",
      "people.badfile": "This file is not a participant list of this page.",
      "activities.heading": "Activities",
      "activities.explain": "Your organisation's activities. Add a new one or change one.",
      "activities.col.title": "Name",
      "activities.col.code": "Code",
      "activities.col.category": "Category",
      "activities.col.active": "Active",
      "activities.col.edit": "Change",
      "activities.edit": "Change",
      "activities.editLabel": "Change {title}",
      "activities.yes": "yes",
      "activities.no": "no",
      "activities.none": "No activities yet.",
      "activities.new": "New activity",
      "activities.change": "Change activity",
      "activities.title": "Name",
      "activities.code": "Code",
      "activities.code.hint": "Made from the name. No spaces.",
      "activities.category": "Category",
      "activities.neighbourhood": "Neighbourhood",
      "activities.connection": "Meant for meeting people or preventing loneliness",
      "activities.active": "The activity is still running",
      "activities.save": "Save activity",
      "activities.need.title": "Fill in the name.",
      "activities.need.code": "A code has no spaces or slashes (/).",
      "activities.saved": "Activity '{title}' was saved.",
      "upload.heading": "Upload a list",
      "upload.explain": "Do you keep attendance in Excel? Download the template, fill it in and upload it here. Uploading the same file again does no harm.",
      "upload.tpl.attendance.xlsx": "Attendance template (Excel)",
      "upload.tpl.attendance.csv": "Attendance template (CSV)",
      "upload.tpl.activities.xlsx": "Activities template (Excel)",
      "upload.tpl.activities.csv": "Activities template (CSV)",
      "upload.kind": "What is in the file?",
      "upload.kind.attendance": "Attendance",
      "upload.kind.activities": "Activities",
      "upload.file": "File (Excel .xlsx or CSV)",
      "upload.partial": "Save the good rows, even when other rows have a problem",
      "upload.submit": "Upload",
      "upload.need.file": "Choose a file first.",
      "report.row": "Row",
      "report.column": "Column",
      "report.problem": "What is wrong",
      "report.caption": "Problems in the file",
      "report.file": "whole file",
      "error.network": "The server cannot be reached. Try again in a moment.",
      "error.server": "Something went wrong ({status}). Try again later.",
      "error.expired": "Your key no longer works. Sign in again.",
    },
  };

  const STORE_KEY = "verbinding.invoer.key"; // sessionStorage: this tab only
  const STORE_LANG = "verbinding.lang";
  const STORE_PEOPLE = "verbinding.invoer.people"; // localStorage: names stay on this device
  const PEOPLE_FORMAT = "verbinding-deelnemers";
  const NUMBER = /^(?=\S*\d)\S{1,200}$/; // as the server checks a participant number
  const CODE = /^[^\s/]{1,128}$/;

  const state = { lang: "nl", key: null, reference: null, activities: [], people: [], editing: null };
  const $ = (id) => document.getElementById(id);
  const has = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

  function store(kind) {
    try {
      return kind === "session" ? window.sessionStorage : window.localStorage;
    } catch (e) {
      return null;
    }
  }

  function t(key, vars) {
    const table = TEXTS[state.lang] || TEXTS.nl;
    let s = has(table, key) ? table[key] : key;
    if (vars) for (const name of Object.keys(vars)) s = s.split("{" + name + "}").join(String(vars[name]));
    return s;
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  // ---------------------------------------------------------------------------- language

  function applyLanguage() {
    document.documentElement.lang = state.lang;
    document.title = t("title") + " — Samen naar verbinding";
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
    const toggle = $("lang");
    toggle.textContent = t("lang.switch");
    toggle.setAttribute("lang", state.lang === "nl" ? "en" : "nl");
    if (state.reference) {
      fillSelects();
      renderActivities();
      renderPeople();
      renderSessionList();
    }
  }

  // ------------------------------------------------------------------------------ the API

  class ApiError extends Error {
    constructor(status, body) {
      super("HTTP " + status);
      this.status = status;
      this.body = body;
    }
  }

  async function api(method, path, options) {
    const opts = options || {};
    const headers = { Authorization: "Bearer " + state.key };
    let body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.file) {
      headers["Content-Type"] = opts.file.type || "application/octet-stream";
      body = opts.file;
    }
    const params = new URLSearchParams(Object.assign({ lang: state.lang }, opts.params || {}));
    let response;
    try {
      response = await fetch(path + "?" + params.toString(), { method, headers, body, cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, null);
    }
    if (opts.blob && response.ok) return response.blob();
    let data = null;
    try {
      data = response.status === 204 ? null : await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function describeError(err) {
    if (err.status === 0) return t("error.network");
    if (err.status === 401) return t("error.expired");
    return t("error.server", { status: err.status });
  }

  // ----------------------------------------------------------------------------- sign in

  function showSignin(message) {
    document.querySelector("main").dataset.state = "need-key";
    $("signin").hidden = false;
    $("app").hidden = true;
    $("forget").hidden = true;
    setFieldError("key-input", "key-error", message || null);
  }

  async function signIn(key) {
    state.key = key;
    try {
      const [list, reference] = await Promise.all([api("GET", "/v1/activities"), api("GET", "/v1/reference")]);
      state.activities = list.activities;
      state.reference = reference;
    } catch (err) {
      state.key = null;
      store("session")?.removeItem(STORE_KEY);
      const message = err.status === 401 ? t("signin.rejected") : err.status === 403 ? t("signin.forbidden") : describeError(err);
      showSignin(message);
      document.querySelector("main").dataset.state = "key-rejected";
      $("key-input").focus();
      return;
    }
    store("session")?.setItem(STORE_KEY, key);
    $("signin").hidden = true;
    $("app").hidden = false;
    $("forget").hidden = false;
    fillSelects();
    renderActivities();
    renderPeople();
    renderSessionList();
    document.querySelector("main").dataset.state = "ready";
  }

  function signOut() {
    store("session")?.removeItem(STORE_KEY);
    state.key = null;
    $("key-input").value = "";
    showSignin(null);
    $("key-input").focus();
  }

  // ------------------------------------------------------------------------ form helpers

  function setFieldError(inputId, errorId, message) {
    const input = $(inputId);
    const error = $(errorId);
    if (message) {
      error.textContent = message;
      error.hidden = false;
      if (input) input.setAttribute("aria-invalid", "true");
    } else {
      error.textContent = "";
      error.hidden = true;
      if (input) input.removeAttribute("aria-invalid");
    }
    return !message;
  }

  function label(listName, value) {
    const item = (state.reference?.[listName] || []).find((x) => x.value === value);
    return item ? item[state.lang] : value;
  }

  function options(select, listName, placeholder) {
    const current = select.value;
    select.replaceChildren();
    if (placeholder) select.append(el("option", { value: "", text: placeholder }));
    for (const item of state.reference[listName]) select.append(el("option", { value: item.value, text: item[state.lang] }));
    if (current) select.value = current;
  }

  function fillSelects() {
    options($("person-neighbourhood"), "neighbourhoods");
    options($("person-age"), "age_bands");
    options($("activity-category"), "activity_categories");
    options($("activity-neighbourhood"), "neighbourhoods");
    const select = $("session-activity");
    const current = select.value;
    select.replaceChildren(el("option", { value: "", text: t("session.choose") }));
    for (const a of state.activities.filter((x) => x.active)) select.append(el("option", { value: a.activity_id, text: a.title }));
    if (current) select.value = current;
  }

  // ------------------------------------------------------------------------- the report

  function renderReport(container, report, ok) {
    container.replaceChildren();
    container.append(el("p", { class: "message " + (ok ? "ok" : "bad"), text: report.message, "data-testid": "report-message" }));
    if (!report.problems || !report.problems.length) return;
    const rows = report.problems.map((p) =>
      el("tr", { "data-testid": "report-problem", dataset: { row: p.row ?? "", code: p.code } }, [
        el("td", { text: p.row === null ? t("report.file") : String(p.row) }),
        el("td", { text: p.column || "" }),
        el("td", { text: p.message }),
      ])
    );
    container.append(
      el("table", { class: "problems" }, [
        el("caption", { class: "visually-hidden", text: t("report.caption") }),
        el("thead", {}, [
          el("tr", {}, [
            el("th", { scope: "col", text: t("report.row") }),
            el("th", { scope: "col", text: t("report.column") }),
            el("th", { scope: "col", text: t("report.problem") }),
          ]),
        ]),
        el("tbody", {}, rows),
      ])
    );
  }

  function renderFailure(container, err) {
    if (err.body && err.body.report) {
      renderReport(container, err.body.report, false);
    } else {
      container.replaceChildren(el("p", { class: "message bad", text: describeError(err), "data-testid": "report-message" }));
    }
    if (err.status === 401) signOut();
  }

  // -------------------------------------------------------------------------- the people

  function loadPeople() {
    try {
      const raw = JSON.parse(store("local")?.getItem(STORE_PEOPLE) || "[]");
      state.people = Array.isArray(raw) ? raw.filter(validPerson) : [];
    } catch (e) {
      state.people = [];
    }
  }

  function savePeople() {
    state.people.sort((a, b) => a.name.localeCompare(b.name, "nl"));
    store("local")?.setItem(STORE_PEOPLE, JSON.stringify(state.people));
  }

  function validPerson(p) {
    return p && typeof p.name === "string" && typeof p.number === "string" && NUMBER.test(p.number)
      && typeof p.neighbourhood === "string" && typeof p.age_band === "string";
  }

  function renderPeople() {
    const list = $("people-list");
    list.replaceChildren();
    for (const person of state.people) {
      const remove = el("button", { type: "button", class: "btn btn-light btn-small", "aria-label": t("people.removeLabel", { name: person.name }), text: t("people.remove") });
      remove.addEventListener("click", () => {
        state.people = state.people.filter((p) => p.number !== person.number);
        savePeople();
        renderPeople();
        renderSessionList();
      });
      list.append(
        el("li", { "data-testid": "person" }, [
          el("span", {}, [
            el("strong", { text: person.name }),
            " · " + person.number + " · " + label("neighbourhoods", person.neighbourhood) + " · " + label("age_bands", person.age_band),
          ]),
          remove,
        ])
      );
    }
  }

  function addPerson(event) {
    event.preventDefault();
    const name = $("person-name").value.trim();
    const number = $("person-number").value.trim();
    let ok = setFieldError("person-name", "person-name-error", name ? null : t("people.need.name"));
    const taken = state.people.find((p) => p.number === number);
    const numberError = !NUMBER.test(number) ? t("people.need.number") : taken ? t("people.taken", { name: taken.name }) : null;
    ok = setFieldError("person-number", "person-number-error", numberError) && ok;
    if (!ok) {
      (name ? $("person-number") : $("person-name")).focus();
      return;
    }
    state.people.push({ name, number, neighbourhood: $("person-neighbourhood").value, age_band: $("person-age").value });
    savePeople();
    renderPeople();
    renderSessionList();
    $("person-name").value = "";
    $("person-number").value = "";
    $("person-name").focus();
  }

  function exportPeople() {
    const doc = { format: PEOPLE_FORMAT, version: 1, people: state.people };
    const blob = new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
    download(blob, "deelnemers.json");
  }

  async function importPeople(event) {
    const file = event.target.files[0];
    event.target.value = "";
    if (!file) return;
    let doc;
    try {
      doc = JSON.parse(await file.text());
    } catch (e) {
      doc = null;
    }
    if (!doc || doc.format !== PEOPLE_FORMAT || !Array.isArray(doc.people)) {
      $("people-result").textContent = t("people.badfile");
      return;
    }
    const incoming = doc.people.filter(validPerson).map((p) => ({ name: p.name, number: p.number, neighbourhood: p.neighbourhood, age_band: p.age_band }));
    const byNumber = new Map(state.people.map((p) => [p.number, p]));
    for (const p of incoming) byNumber.set(p.number, p);
    state.people = Array.from(byNumber.values());
    savePeople();
    renderPeople();
    renderSessionList();
    $("people-result").textContent = t("people.imported", { count: incoming.length });
  }

  // -------------------------------------------------------------------------- a session

  function renderSessionList() {
    const list = $("session-list");
    const marked = new Map();
    for (const input of list.querySelectorAll("input[type=radio]:checked")) marked.set(input.name, input.value);
    list.replaceChildren();
    $("session-empty").hidden = state.people.length > 0;
    state.people.forEach((person, index) => {
      const group = "status-" + person.number;
      const legendId = "who-" + index;
      const choice = (value, text) => {
        const id = group + "-" + value;
        const input = el("input", { type: "radio", id, name: group, value, dataset: { number: person.number } });
        input.checked = (marked.get(group) || "none") === value;
        return el("div", { class: "check" }, [input, el("label", { for: id, text })]);
      };
      list.append(
        el("li", { "data-testid": "session-person", dataset: { number: person.number } }, [
          el("span", { class: "who", id: legendId }, [person.name + " ", el("span", { class: "number", text: "(" + person.number + ")" })]),
          el("fieldset", { "aria-labelledby": legendId }, [
            choice("attended", t("session.present")),
            choice("no_show", t("session.absent")),
            choice("none", t("session.none")),
          ]),
        ])
      );
    });
  }

  async function saveSession(event) {
    event.preventDefault();
    const activity = $("session-activity").value;
    const date = $("session-date").value;
    const time = $("session-time").value;
    const participants = [];
    for (const input of $("session-list").querySelectorAll("input[type=radio]:checked")) {
      if (input.value === "none") continue;
      const person = state.people.find((p) => p.number === input.dataset.number);
      // Only the number and the coarse attributes: the name stays here.
      if (person) participants.push({ number: person.number, neighbourhood: person.neighbourhood, age_band: person.age_band, status: input.value });
    }
    let ok = setFieldError("session-activity", "session-activity-error", activity ? null : t("session.need.activity"));
    ok = setFieldError("session-date", "session-date-error", date ? null : t("session.need.date")) && ok;
    ok = setFieldError("session-time", "session-time-error", time ? null : t("session.need.time")) && ok;
    ok = setFieldError(null, "session-people-error", participants.length ? null : t("session.need.people")) && ok;
    if (!ok) {
      const first = document.querySelector("#session-form [aria-invalid=true]");
      if (first) first.focus();
      return;
    }
    const result = $("session-result");
    result.replaceChildren();
    try {
      const report = await api("POST", "/v1/attendance-lists", { json: { activity_id: activity, date, start_time: time, participants } });
      renderReport(result, report, true);
    } catch (err) {
      renderFailure(result, err);
    }
    result.setAttribute("tabindex", "-1");
    result.focus();
  }

  // ------------------------------------------------------------------------- activities

  function renderActivities() {
    const body = $("activities-body");
    body.replaceChildren();
    if (!state.activities.length) {
      body.append(el("tr", {}, [el("td", { colspan: "5", text: t("activities.none") })]));
    }
    for (const a of state.activities) {
      const edit = el("button", { type: "button", class: "btn btn-light btn-small", "aria-label": t("activities.editLabel", { title: a.title }), text: t("activities.edit") });
      edit.addEventListener("click", () => editActivity(a));
      body.append(
        el("tr", { "data-testid": "activity-row", dataset: { code: a.activity_id } }, [
          el("td", { text: a.title }),
          el("td", { class: "code", text: a.activity_id }),
          el("td", { text: label("activity_categories", a.category) }),
          el("td", { text: a.active ? t("activities.yes") : t("activities.no") }),
          el("td", {}, [edit]),
        ])
      );
    }
  }

  function slug(text) {
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 60);
  }

  function editActivity(a) {
    state.editing = a.activity_id;
    $("activity-form-heading").textContent = t("activities.change");
    $("activity-title").value = a.title;
    $("activity-code").value = a.activity_id;
    $("activity-code").readOnly = true;
    $("activity-category").value = a.category;
    $("activity-neighbourhood").value = a.neighbourhood;
    $("activity-connection").checked = a.aimed_at_connection;
    $("activity-active").checked = a.active;
    $("activity-title").focus();
  }

  async function saveActivity(event) {
    event.preventDefault();
    const title = $("activity-title").value.trim();
    const code = $("activity-code").value.trim() || slug(title);
    let ok = setFieldError("activity-title", "activity-title-error", title ? null : t("activities.need.title"));
    ok = setFieldError("activity-code", "activity-code-error", CODE.test(code) ? null : t("activities.need.code")) && ok;
    if (!ok) return;
    const current = state.activities.find((a) => a.activity_id === code);
    const body = {
      title,
      category: $("activity-category").value,
      aimed_at_connection: $("activity-connection").checked,
      neighbourhood: $("activity-neighbourhood").value,
      capacity: current ? current.capacity : null,
      target_age_bands: current ? current.target_age_bands : [],
      active: $("activity-active").checked,
    };
    const result = $("activity-result");
    try {
      await api("PUT", "/v1/activities/" + encodeURIComponent(code), { json: body });
      state.activities = (await api("GET", "/v1/activities")).activities;
      result.replaceChildren(el("span", { text: t("activities.saved", { title }) }));
      state.editing = null;
      $("activity-form").reset();
      $("activity-code").readOnly = false;
      $("activity-form-heading").textContent = t("activities.new");
      fillSelects();
      renderActivities();
    } catch (err) {
      renderFailure(result, err);
    }
  }

  // ---------------------------------------------------------------------------- uploads

  function download(blob, name) {
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  async function downloadTemplate(event) {
    const name = event.currentTarget.dataset.template;
    try {
      const blob = await api("GET", "/v1/templates/" + name, { blob: true });
      const [kind, ext] = name.split(".");
      const local = { nl: { attendance: "aanwezigheid", activities: "activiteiten" }, en: { attendance: "attendance", activities: "activities" } };
      download(blob, local[state.lang][kind] + "." + ext);
    } catch (err) {
      renderFailure($("upload-result"), err);
    }
  }

  async function upload(event) {
    event.preventDefault();
    const file = $("upload-file").files[0];
    if (!setFieldError("upload-file", "upload-file-error", file ? null : t("upload.need.file"))) {
      $("upload-file").focus();
      return;
    }
    const kind = document.querySelector("input[name=upload-kind]:checked").value;
    const result = $("upload-result");
    result.replaceChildren();
    result.dataset.state = "busy";
    try {
      const report = await api("POST", "/v1/uploads/" + kind, {
        file,
        params: { filename: file.name, write_valid_rows: $("upload-partial").checked ? "true" : "false" },
      });
      renderReport(result, report, true);
      if (kind === "activities") {
        state.activities = (await api("GET", "/v1/activities")).activities;
        fillSelects();
        renderActivities();
      }
      result.dataset.state = "saved";
    } catch (err) {
      renderFailure(result, err);
      result.dataset.state = "refused";
    }
    result.setAttribute("tabindex", "-1");
    result.focus();
  }

  // ------------------------------------------------------------------------------ start

  function start() {
    const saved = store("local")?.getItem(STORE_LANG);
    state.lang = saved === "en" ? "en" : "nl";
    loadPeople();
    applyLanguage();
    $("lang").addEventListener("click", () => {
      state.lang = state.lang === "nl" ? "en" : "nl";
      store("local")?.setItem(STORE_LANG, state.lang);
      applyLanguage();
    });
    $("forget").addEventListener("click", signOut);
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key-input").value.trim();
      if (!setFieldError("key-input", "key-error", key ? null : t("signin.empty"))) return;
      signIn(key);
    });
    $("person-form").addEventListener("submit", addPerson);
    $("people-export").addEventListener("click", exportPeople);
    $("people-import").addEventListener("change", importPeople);
    $("session-form").addEventListener("submit", saveSession);
    $("activity-form").addEventListener("submit", saveActivity);
    $("activity-title").addEventListener("input", () => {
      if (!state.editing) $("activity-code").value = slug($("activity-title").value);
    });
    for (const button of document.querySelectorAll("[data-template]")) button.addEventListener("click", downloadTemplate);
    $("upload-form").addEventListener("submit", upload);
    const today = new Date();
    $("session-date").value = today.getFullYear() + "-" + String(today.getMonth() + 1).padStart(2, "0") + "-" + String(today.getDate()).padStart(2, "0");

    const key = store("session")?.getItem(STORE_KEY);
    if (key) signIn(key);
    else showSignin(null);
  }

  start();
})();

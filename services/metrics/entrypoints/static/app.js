/* The coalition dashboard: reads the metrics service's JSON API and shows it in plain language.
 *
 * No build step, no framework, no third-party code: charts are small SVG drawings made here.
 * Every text that comes from the API is inserted with textContent (never parsed as markup), so a
 * hostile value in a key (an organisation id, a neighbourhood) is shown, not run.
 */
(function () {
  "use strict";

  // ------------------------------------------------------------------------------ texts
  const TEXTS = {
    nl: {
      "skip": "Naar de cijfers",
      "kicker": "Coalitie tegen eenzaamheid",
      "title": "Samen naar verbinding",
      "subtitle": "Hoe staan we ervoor? De cijfers van het actieprogramma, per deeldoel.",
      "lang.switch": "English",
      "forget": "Sleutel wissen",
      "key.heading": "Toegangssleutel",
      "key.explain": "Deze cijfers zijn alleen voor partners van de coalitie. Vul de sleutel in die u van de coördinator kreeg.",
      "key.label": "Sleutel",
      "key.submit": "Cijfers tonen",
      "key.rejected": "Deze sleutel wordt niet herkend of geeft geen toegang tot de cijfers. Controleer de sleutel of vraag een nieuwe aan de coördinator.",
      "period.aria": "Periode",
      "period.kind": "Soort periode",
      "period.month": "Maand",
      "period.quarter": "Kwartaal",
      "period.year": "Jaar",
      "period.label": "Periode",
      "period.quarterName": "{n}e kwartaal {year}",
      "range": "Van {from} tot en met {to}",
      "fresh": "Bijgewerkt tot {time}",
      "fresh.none": "Nog geen gegevens ontvangen",
      "fresh.stale": "Er zijn nieuwe gegevens binnen. We rekenen ze nu mee. Deze cijfers zijn van {time}.",
      "subtitle.own": "De cijfers van uw eigen organisatie, met dezelfde bescherming van inwoners als alle cijfers.",
      "legend": "niet getoond ter bescherming van privacy",
      "hidden": "verborgen",
      "suppressed.title": "niet getoond ter bescherming van privacy",
      "reasons.title": "Waarom staat er soms geen getal?",
      "reasons.lead": "Achter elk getal staan inwoners. Een getal dat te veel over een kleine groep zegt, tonen we niet. Er zijn drie redenen:",
      "reason.primary": "Te weinig mensen",
      "reason.secondary": "Ter bescherming van een ander getal",
      "reason.linked": "Hangt af van een verborgen getal",
      "released": "Uitsplitsingen van {time}",
      "released.none": "Uitsplitsingen nog niet beschikbaar",
      "released.hint": "Uitsplitsingen (per wijk, leeftijd, activiteit, beroep en organisatie) worden eens per dag vrijgegeven; de totalen zijn actueel.",
      "view.own": "Cijfers van mijn organisatie",
      "view.coalition": "Cijfers van de hele gemeente",
      "own.lead": "{org}: de cijfers van uw organisatie in deze periode, uit de uitsplitsingen van {time}.",
      "nb.by": "Uitsplitsen naar",
      "by.neighbourhood": "Wijk",
      "by.age_band": "Leeftijd",
      "by.category": "Soort activiteit",
      "nb.title.age_band": "Deelname per leeftijd",
      "nb.hint.age_band": "Hoe oud de deelnemers zijn. Eenzaamheid per leeftijd komt uit het bevolkingsonderzoek.",
      "nb.title.category": "Deelname per soort activiteit",
      "nb.hint.category": "Aan wat voor activiteiten inwoners meedoen.",
      "nb.missing": "De uitsplitsingen zijn nog niet beschikbaar: ze worden eens per dag vrijgegeven. Probeer het later opnieuw.",
      "provisional.title": "voorlopig: de termijn van dit cijfer loopt nog, het kan nog stijgen",
      "missing": "geen gegevens",
      "loading": "Cijfers laden…",
      "loaded": "Cijfers voor {period} geladen.",
      "error": "De cijfers konden niet worden geladen ({detail}). Probeer het later opnieuw.",
      "s1.title": "Minder eenzaamheid",
      "s1.lead": "Het doel: in 2030 voelen minder inwoners zich eenzaam dan bij de nulmeting.",
      "s1.prevalence": "Eenzaamheid onder inwoners, naast de nulmeting",
      "s1.prevalence.hint": "Uit de vragenlijsten van het bevolkingsonderzoek in deze periode. Lager dan de nulmeting is beter.",
      "s2.title": "Meedoen",
      "s2.lead": "Inwoners die zich eenzaam voelen vinden de weg naar activiteiten en hulp; meer inwoners doen mee aan activiteiten gericht op ontmoeting.",
      "s3.title": "Signaleren en doorverwijzen",
      "s3.lead": "Professionals en vrijwilligers kennen de signalen van eenzaamheid en handelen ernaar of verwijzen door.",
      "baseline": "Nulmeting",
      "baseline.value": "Nulmeting: {value}",
      "baseline.same": "Zelfde periode in {year}: {value} deelnemers",
      "baseline.none": "Geen nulmeting voor deze periode",
      "compare.lower": "lager dan de nulmeting",
      "compare.higher": "hoger dan de nulmeting",
      "compare.equal": "gelijk aan de nulmeting",
      "now": "Nu",
      "unit.days": "dagen",
      "unit.points": "punten",
      "trend.title": "Deelnemers per maand",
      "trend.hint": "De laatste twaalf maanden. Een onderbroken lijn betekent: niet getoond ter bescherming van privacy.",
      "trend.unique": "Unieke deelnemers",
      "trend.new": "Nieuwe deelnemers",
      "trend.table": "Toon de cijfers als tabel",
      "trend.month": "Maand",
      "trend.aria": "Lijngrafiek van unieke en nieuwe deelnemers per maand, {from} tot en met {to}.",
      "nb.title": "Deelname per wijk",
      "nb.hint": "Waar de deelnemers wonen. Eenzaamheid per wijk komt uit het bevolkingsonderzoek.",
      "nb.col.key": "Wijk",
      "nb.col.unique": "Unieke deelnemers",
      "nb.col.new": "Nieuwe deelnemers",
      "nb.col.attendances": "Bezoeken",
      "nb.col.lonely": "Eenzaam",
      "funnel.title": "Van doorverwijzing naar deelname",
      "funnel.hint": "Elke stap telt de doorverwijzingen die minstens zo ver kwamen: geaccepteerd door de organisatie, contact gehad, binnen 60 dagen de eerste keer deelgenomen, en daarna binnen 90 dagen minstens 3 keer gekomen.",
      "funnel.referrals": "Verwezen",
      "funnel.accepted": "Geaccepteerd",
      "funnel.contacted": "Contact gehad",
      "funnel.converted": "Eerste keer deelgenomen",
      "funnel.referrals_retained": "Blijft komen",
      "roles.title": "Doorverwijzingen per beroep",
      "roles.col.role": "Verwezen door",
      "roles.col.referrals": "Verwezen",
      "roles.col.accepted": "Geaccepteerd",
      "roles.col.contacted": "Contact gehad",
      "roles.col.converted": "Eerste keer deelgenomen",
      "roles.col.referrals_retained": "Blijft komen",
      "roles.col.funnel": "Trechter",
      "trained.title": "Getrainde mensen per beroep",
      "trained.hint": "Getraind in het herkennen van eenzaamheid, opgeteld tot en met deze periode.",
      "signals.title": "Signalen bij doorverwijzing",
      "signals.hint": "Welke signalen de verwijzer zag. Eén verwijzing kan meerdere signalen hebben.",
      "empty": "Nog niets voor deze periode.",
      "extra.title": "Overige cijfers",
      "footer": "Cijfers van partners van het actieprogramma „Samen naar verbinding!”. Inwoners zijn niet herkenbaar: een getal over minder dan 10 mensen, of waaruit zo'n getal terug te rekenen is, wordt niet getoond.",
    },
    en: {
      "skip": "Skip to the figures",
      "kicker": "Coalition against loneliness",
      "title": "Samen naar verbinding",
      "subtitle": "How are we doing? The figures of the action programme, per subgoal.",
      "lang.switch": "Nederlands",
      "forget": "Forget key",
      "key.heading": "Access key",
      "key.explain": "These figures are for the coalition's partners only. Enter the key you received from the coordinator.",
      "key.label": "Key",
      "key.submit": "Show figures",
      "key.rejected": "This key is not recognised or gives no access to the figures. Check the key or ask the coordinator for a new one.",
      "period.aria": "Period",
      "period.kind": "Kind of period",
      "period.month": "Month",
      "period.quarter": "Quarter",
      "period.year": "Year",
      "period.label": "Period",
      "period.quarterName": "Q{n} {year}",
      "range": "From {from} to {to}",
      "fresh": "Updated until {time}",
      "fresh.none": "No data received yet",
      "fresh.stale": "New data has come in and is being counted now. These figures are from {time}.",
      "subtitle.own": "The figures of your own organisation, with the same protection of residents as every figure.",
      "legend": "not shown to protect privacy",
      "hidden": "hidden",
      "suppressed.title": "not shown to protect privacy",
      "reasons.title": "Why is a figure sometimes missing?",
      "reasons.lead": "Every figure is about residents. A figure that says too much about a small group is not shown. There are three reasons:",
      "reason.primary": "Too few people",
      "reason.secondary": "To protect another figure",
      "reason.linked": "Rests on a hidden figure",
      "released": "Breakdowns as of {time}",
      "released.none": "Breakdowns not yet available",
      "released.hint": "Breakdowns (by neighbourhood, age, activity, profession and organisation) are released once a day; the totals are up to date.",
      "view.own": "My organisation's figures",
      "view.coalition": "Figures of the whole municipality",
      "own.lead": "{org}: your organisation's figures for this period, from the breakdowns of {time}.",
      "nb.by": "Break down by",
      "by.neighbourhood": "Neighbourhood",
      "by.age_band": "Age",
      "by.category": "Kind of activity",
      "nb.title.age_band": "Participation by age",
      "nb.hint.age_band": "How old the participants are. Loneliness by age comes from the population survey.",
      "nb.title.category": "Participation by kind of activity",
      "nb.hint.category": "What kind of activities residents take part in.",
      "nb.missing": "The breakdowns are not available yet: they are released once a day. Please try again later.",
      "provisional.title": "provisional: this figure's window is still open, it can still grow",
      "missing": "no data",
      "loading": "Loading figures…",
      "loaded": "Figures for {period} loaded.",
      "error": "The figures could not be loaded ({detail}). Please try again later.",
      "s1.title": "Less loneliness",
      "s1.lead": "The aim: by 2030 fewer residents feel lonely than in the baseline.",
      "s1.prevalence": "Loneliness among residents, beside the baseline",
      "s1.prevalence.hint": "From the population survey questionnaires of this period. Below the baseline is better.",
      "s2.title": "Taking part",
      "s2.lead": "Residents who feel lonely find their way to activities and help; more residents take part in activities aimed at meeting people.",
      "s3.title": "Signalling and referral",
      "s3.lead": "Professionals and volunteers know the signals of loneliness and act on them or refer.",
      "baseline": "Baseline",
      "baseline.value": "Baseline: {value}",
      "baseline.same": "Same period in {year}: {value} participants",
      "baseline.none": "No baseline for this period",
      "compare.lower": "below the baseline",
      "compare.higher": "above the baseline",
      "compare.equal": "equal to the baseline",
      "now": "Now",
      "unit.days": "days",
      "unit.points": "points",
      "trend.title": "Participants per month",
      "trend.hint": "The last twelve months. A broken line means: not shown to protect privacy.",
      "trend.unique": "Unique participants",
      "trend.new": "New participants",
      "trend.table": "Show the figures as a table",
      "trend.month": "Month",
      "trend.aria": "Line chart of unique and new participants per month, {from} to {to}.",
      "nb.title": "Participation by neighbourhood",
      "nb.hint": "Where the participants live. Loneliness per neighbourhood comes from the population survey.",
      "nb.col.key": "Neighbourhood",
      "nb.col.unique": "Unique participants",
      "nb.col.new": "New participants",
      "nb.col.attendances": "Attendances",
      "nb.col.lonely": "Lonely",
      "funnel.title": "From referral to taking part",
      "funnel.hint": "Each step counts the referrals that got at least that far: accepted by the organisation, contacted, took part for the first time within 60 days, and then came at least 3 times within 90 days.",
      "funnel.referrals": "Referred",
      "funnel.accepted": "Accepted",
      "funnel.contacted": "Contacted",
      "funnel.converted": "First attendance",
      "funnel.referrals_retained": "Keeps coming",
      "roles.title": "Referrals by profession",
      "roles.col.role": "Referred by",
      "roles.col.referrals": "Referred",
      "roles.col.accepted": "Accepted",
      "roles.col.contacted": "Contacted",
      "roles.col.converted": "First attendance",
      "roles.col.referrals_retained": "Keeps coming",
      "roles.col.funnel": "Funnel",
      "trained.title": "Trained people by profession",
      "trained.hint": "Trained in recognising loneliness, counted up to the end of this period.",
      "signals.title": "Signals at referral",
      "signals.hint": "The signals the referrer saw. One referral can have several signals.",
      "empty": "Nothing for this period yet.",
      "extra.title": "Other figures",
      "footer": "Figures from the partners of the action programme \u201cSamen naar verbinding!\u201d. Residents cannot be recognised: a figure about fewer than 10 people, or from which such a figure could be worked out, is not shown.",
    },
  };

  // Label and plain-language explanation of every figure, per language.
  const FIGURES = {
    nl: {
      "s1.prevalence_lonely": ["Eenzaam", "Deel van de ondervraagde inwoners dat zich matig tot zeer ernstig eenzaam voelt (score 3 of hoger op de eenzaamheidsschaal van De Jong Gierveld)."],
      "s1.prevalence_severe": ["Ernstig eenzaam", "Deel dat zich ernstig tot zeer ernstig eenzaam voelt (score 9 of hoger)."],
      "s1.prevalence_emotional": ["Emotioneel eenzaam", "Deel dat een hechte, persoonlijke band met iemand mist."],
      "s1.prevalence_social": ["Sociaal eenzaam", "Deel dat een bredere kring van mensen om zich heen mist."],
      "s1.measurements": ["Ingevulde vragenlijsten", "Inwoners die deze periode de vragenlijst over eenzaamheid invulden (bevolkingsonderzoek)."],
      "s1.referral_outcome.pairs": ["Voor- en nameting", "Doorverwezen inwoners die de vragenlijst bij de start én later opnieuw invulden."],
      "s1.referral_outcome.mean_change": ["Verandering in eenzaamheid", "Gemiddelde verandering van de score tussen start en nameting. Een negatief getal betekent: minder eenzaam."],
      "s1.referral_outcome.improved_share": ["Minder eenzaam geworden", "Deel van hen dat bij de nameting in een lichtere categorie van eenzaamheid valt."],
      "s2.participants_unique": ["Unieke deelnemers", "Inwoners die deze periode minstens één keer meededen aan een activiteit gericht op ontmoeting."],
      "s2.participants_new": ["Nieuwe deelnemers", "Inwoners die deze periode voor het eerst meededen aan zo'n activiteit."],
      "s2.attendances": ["Bezoeken", "Aantal keren dat inwoners aanwezig waren bij een activiteit."],
      "s2.no_shows": ["Niet verschenen", "Aantal keren dat iemand verwacht werd maar niet kwam."],
      "s2.attendance_rate": ["Opkomst", "Deel van de verwachte bezoeken waarbij de inwoner er ook echt was."],
      "s2.registrations": ["Aanmeldingen", "Nieuwe aanmeldingen voor activiteiten in deze periode."],
      "s2.cancellations": ["Afmeldingen", "Aanmeldingen die in deze periode werden ingetrokken."],
      "s2.retained": ["Blijvers", "Nieuwe deelnemers die binnen 90 dagen na hun eerste keer minstens 3 keer meededen."],
      "s2.growth_vs_baseline": ["Groei sinds de nulmeting", "Verschil in unieke deelnemers met dezelfde periode in het jaar van de nulmeting."],
      "s3.referrals": ["Doorverwijzingen", "Keren dat een professional of vrijwilliger een inwoner met signalen van eenzaamheid doorverwees, met toestemming."],
      "s3.accepted": ["Geaccepteerd", "Doorverwijzingen die de ontvangende organisatie heeft geaccepteerd (of die verder kwamen: contact of deelname)."],
      "s3.contacted": ["Contact gehad", "Doorverwijzingen waarbij de organisatie contact had met de inwoner (of de inwoner al meedeed)."],
      "s3.converted": ["Eerste keer deelgenomen", "Doorverwezen inwoners die binnen 60 dagen echt meededen aan een activiteit."],
      "s3.referrals_retained": ["Blijft komen", "Doorverwezen inwoners die na hun eerste keer binnen 90 dagen minstens 3 keer meededen."],
      "s3.days_to_first_contact": ["Tijd tot eerste contact", "Hoe lang het meestal (mediaan) duurt van doorverwijzing tot het eerste contact (of de eerste keer meedoen, als dat eerder was)."],
      "s3.referral_acceptance_rate": ["Acceptatiegraad", "Deel van de beoordeelde doorverwijzingen dat werd aangenomen."],
      "s3.referral_conversion": ["Van verwijzing naar deelname", "Deel van de doorverwijzingen dat binnen 60 dagen tot deelname leidde."],
      "s3.days_to_first_attendance": ["Tijd tot eerste keer meedoen", "Hoe lang het meestal (mediaan) duurt van doorverwijzing tot de eerste keer meedoen."],
      "s3.people_trained": ["Getrainde mensen", "Professionals en vrijwilligers die getraind zijn in het herkennen van eenzaamheid (tot en met deze periode)."],
      "s3.organisations_with_trained_staff": ["Organisaties met getrainde mensen", "Partnerorganisaties met minstens één getrainde medewerker of vrijwilliger."],
      "s3.organisations_with_trained_staff_share": ["Deel van de partners", "Deel van alle partnerorganisaties dat getrainde mensen heeft."],
      "s3.referrals_overdue": ["Doorverwijzingen zonder vervolg", "Openstaande doorverwijzingen waar al meer dan 14 dagen niets mee gebeurde (stand van nu, niet per periode)."],
    },
    en: {
      "s1.prevalence_lonely": ["Lonely", "Share of surveyed residents who feel moderately to very severely lonely (score 3 or more on the De Jong Gierveld loneliness scale)."],
      "s1.prevalence_severe": ["Severely lonely", "Share who feel severely to very severely lonely (score 9 or more)."],
      "s1.prevalence_emotional": ["Emotionally lonely", "Share who miss a close, personal bond with someone."],
      "s1.prevalence_social": ["Socially lonely", "Share who miss a wider circle of people around them."],
      "s1.measurements": ["Questionnaires completed", "Residents who filled in the loneliness questionnaire in this period (population survey)."],
      "s1.referral_outcome.pairs": ["Before and after", "Referred residents who filled in the questionnaire at the start and again later."],
      "s1.referral_outcome.mean_change": ["Change in loneliness", "Average change of the score between start and follow-up. A negative number means: less lonely."],
      "s1.referral_outcome.improved_share": ["Became less lonely", "Share of them who are in a milder category of loneliness at follow-up."],
      "s2.participants_unique": ["Unique participants", "Residents who took part at least once in this period in an activity aimed at meeting people."],
      "s2.participants_new": ["New participants", "Residents who took part in such an activity for the first time in this period."],
      "s2.attendances": ["Attendances", "Number of times residents were present at an activity."],
      "s2.no_shows": ["No-shows", "Number of times someone was expected but did not come."],
      "s2.attendance_rate": ["Attendance rate", "Share of expected visits where the resident actually came."],
      "s2.registrations": ["Registrations", "New registrations for activities in this period."],
      "s2.cancellations": ["Cancellations", "Registrations withdrawn in this period."],
      "s2.retained": ["Stayed on", "New participants who took part at least 3 times within 90 days of their first time."],
      "s2.growth_vs_baseline": ["Growth since the baseline", "Difference in unique participants with the same period of the baseline year."],
      "s3.referrals": ["Referrals", "Times a professional or volunteer referred a resident showing signals of loneliness, with consent."],
      "s3.accepted": ["Accepted", "Referrals the receiving organisation accepted (or that got further: contact or taking part)."],
      "s3.contacted": ["Contacted", "Referrals where the organisation was in contact with the resident (or the resident already took part)."],
      "s3.converted": ["First attendance", "Referred residents who actually took part in an activity within 60 days."],
      "s3.referrals_retained": ["Keeps coming", "Referred residents who, after their first time, took part at least 3 times within 90 days."],
      "s3.days_to_first_contact": ["Time to first contact", "How long it usually (median) takes from referral to the first contact (or the first time taking part, if that came first)."],
      "s3.referral_acceptance_rate": ["Acceptance rate", "Share of the referrals decided on that were accepted."],
      "s3.referral_conversion": ["From referral to taking part", "Share of referrals that led to taking part within 60 days."],
      "s3.days_to_first_attendance": ["Time to first attendance", "How long it usually (median) takes from referral to taking part for the first time."],
      "s3.people_trained": ["Trained people", "Professionals and volunteers trained in recognising loneliness (up to the end of this period)."],
      "s3.organisations_with_trained_staff": ["Organisations with trained people", "Partner organisations with at least one trained employee or volunteer."],
      "s3.organisations_with_trained_staff_share": ["Share of partners", "Share of all partner organisations that have trained people."],
      "s3.referrals_overdue": ["Referrals without follow-up", "Open referrals with no change for more than 14 days (as of now, not per period)."],
    },
  };

  const NEIGHBOURHOODS = {
    "pijnacker-centrum": "Pijnacker-Centrum",
    "pijnacker-noord": "Pijnacker-Noord",
    "pijnacker-zuid": "Pijnacker-Zuid",
    "keijzershof-eilanden": "Keijzershof en Eilanden",
    "koningshof": "Koningshof",
    "klapwijk": "Klapwijk",
    "ackerswoude": "Ackerswoude",
    "oude-leede": "Oude Leede",
    "nootdorp-centrum": "Nootdorp-Centrum",
    "nootdorp-west": "Nootdorp-West",
    "nootdorp-oost": "Nootdorp-Oost",
    "de-venen": "De Venen",
    "s-gravenhout": "\u2019s-Gravenhout",
    "delfgauw": "Delfgauw",
    "emerald": "Emerald",
    "buitengebied": "Buitengebied",
  };
  const KEY_LABELS = {
    nl: {
      "outside-municipality": "Buiten de gemeente",
      "unknown": "Onbekend",
      "gp": "Huisarts",
      "poh-ggz": "Praktijkondersteuner GGZ",
      "district-nurse": "Wijkverpleegkundige",
      "social-worker": "Maatschappelijk werker",
      "welfare-coach": "Welzijnscoach",
      "volunteer": "Vrijwilliger",
      "informal-care-consultant": "Mantelzorgconsulent",
      "pharmacist": "Apotheker",
      "police": "Wijkagent",
      "other": "Anders",
      "emotional": "Emotioneel",
      "social": "Sociaal",
      "practical": "Praktisch",
      "health": "Gezondheid",
      "meeting": "Ontmoeting",
      "sport": "Sport en bewegen",
      "culture": "Cultuur",
      "learning": "Leren",
      "support-group": "Lotgenotengroep",
      "volunteering": "Vrijwilligerswerk",
      "digital": "Digitaal",
      "help": "Hulp (zoals een maatje)",
      "0-15": "0 tot 16 jaar",
      "16-25": "16 tot 26 jaar",
      "26-64": "26 tot 65 jaar",
      "65-74": "65 tot 75 jaar",
      "75+": "75 jaar en ouder",
    },
    en: {
      "outside-municipality": "Outside the municipality",
      "unknown": "Unknown",
      "gp": "GP",
      "poh-ggz": "Mental health practice nurse",
      "district-nurse": "District nurse",
      "social-worker": "Social worker",
      "welfare-coach": "Welfare coach",
      "volunteer": "Volunteer",
      "informal-care-consultant": "Informal-care consultant",
      "pharmacist": "Pharmacist",
      "police": "Community police officer",
      "other": "Other",
      "emotional": "Emotional",
      "social": "Social",
      "practical": "Practical",
      "health": "Health",
      "meeting": "Meeting people",
      "sport": "Sport and exercise",
      "culture": "Culture",
      "learning": "Learning",
      "support-group": "Support group",
      "volunteering": "Volunteering",
      "digital": "Digital",
      "help": "Help (such as a buddy)",
      "0-15": "0 to 15",
      "16-25": "16 to 25",
      "26-64": "26 to 64",
      "65-74": "65 to 74",
      "75+": "75 and older",
    },
  };

  const CARD_ORDER = {
    s1: ["measurements", "referral_outcome.pairs", "referral_outcome.mean_change", "referral_outcome.improved_share"],
    s2: ["participants_unique", "participants_new", "growth_vs_baseline", "attendances", "attendance_rate", "no_shows", "registrations", "cancellations", "retained"],
    s3: ["referrals", "accepted", "contacted", "converted", "referrals_retained", "referral_acceptance_rate", "referral_conversion", "days_to_first_contact", "days_to_first_attendance", "people_trained", "organisations_with_trained_staff", "organisations_with_trained_staff_share", "referrals_overdue"],
  };
  // The S3 funnel's stages, in order (the API's names).
  const FUNNEL = ["referrals", "accepted", "contacted", "converted", "referrals_retained"];
  const PREVALENCE = ["prevalence_lonely", "prevalence_severe", "prevalence_emotional", "prevalence_social"];
  // Figures shown elsewhere than in a card (a chart or list of their own).
  const NOT_CARDS = new Set(["s3.people_trained_by_role", "s3.referrals_by_signal"]);
  const RATES = new Set([
    "prevalence_lonely", "prevalence_severe", "prevalence_emotional", "prevalence_social",
    "improved_share", "attendance_rate", "referral_acceptance_rate", "referral_conversion",
    "organisations_with_trained_staff_share",
  ]);

  const STORE_KEY = "verbinding.key";
  const STORE_LANG = "verbinding.lang";

  // ------------------------------------------------------------------------------ state
  const state = {
    lang: "nl",
    key: null,
    kind: "month",
    period: null,
    current: null, // {year, month} today in Amsterdam
    data: null, // {totals, nb, roles, trend}: nb and roles null before the first release
    seq: 0,
    view: "coalition", // or "own": the organisation's own figures (/v1/own/indicators)
    coalition: false, // the key may read the coalition's figures
    by: "neighbourhood", // the breakdown of the participation table
  };

  const $ = (id) => document.getElementById(id);

  function storage(kind) {
    try {
      return kind === "session" ? window.sessionStorage : window.localStorage;
    } catch (e) {
      return null;
    }
  }

  const has = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

  function t(key, vars) {
    const table = TEXTS[state.lang] || TEXTS.nl;
    let s = has(table, key) ? table[key] : key;
    if (vars) {
      for (const name of Object.keys(vars)) s = s.split("{" + name + "}").join(String(vars[name]));
    }
    return s;
  }

  /** A readable name for a breakdown key; an unknown key is shown as it is (as text). */
  function keyLabel(key) {
    if (has(KEY_LABELS[state.lang], key)) return KEY_LABELS[state.lang][key];
    if (has(NEIGHBOURHOODS, key)) return NEIGHBOURHOODS[key];
    return String(key);
  }

  function figureText(path) {
    if (has(FIGURES[state.lang], path)) return FIGURES[state.lang][path];
    const name = path.split(".").pop().replace(/_/g, " ");
    return [name.charAt(0).toUpperCase() + name.slice(1), ""];
  }

  // ------------------------------------------------------------------------------ DOM helpers
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [name, value] of Object.entries(attrs)) {
        if (value === undefined || value === null || value === false) continue;
        if (name === "text") node.textContent = String(value);
        else if (name === "class") node.className = value;
        else node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children || []) if (child) node.appendChild(child);
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children || []) if (child) node.appendChild(child);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  // ------------------------------------------------------------------------------ numbers
  function locale() {
    return state.lang === "en" ? "en-GB" : "nl-NL";
  }
  function fmtCount(v) {
    return new Intl.NumberFormat(locale(), { maximumFractionDigits: 0 }).format(v);
  }
  function fmtPercent(v, signed) {
    return new Intl.NumberFormat(locale(), {
      style: "percent",
      maximumFractionDigits: 0,
      signDisplay: signed ? "exceptZero" : "auto",
    }).format(v);
  }
  function fmtDecimal(v, signed) {
    return new Intl.NumberFormat(locale(), {
      minimumFractionDigits: 1,
      maximumFractionDigits: 1,
      signDisplay: signed ? "exceptZero" : "auto",
    }).format(v);
  }

  function formatValue(name, value) {
    if (name === "growth_vs_baseline") return fmtPercent(value, true);
    if (RATES.has(name)) return fmtPercent(value, false);
    if (name === "mean_change") return fmtDecimal(value, true);
    if (name === "days_to_first_attendance" || name === "days_to_first_contact") return fmtDecimal(value, false);
    return fmtCount(value);
  }
  function unitOf(name) {
    if (name === "days_to_first_attendance" || name === "days_to_first_contact") return t("unit.days");
    if (name === "mean_change") return t("unit.points");
    return "";
  }

  function k() {
    return state.data && state.data.totals ? state.data.totals.k : 10;
  }

  /** Why a figure is hidden, in the reader's language: the texts come with every answer. */
  function reasonText(reason) {
    const texts = state.data && state.data.totals && state.data.totals.reasons;
    const own = texts && texts[state.lang] && reason && texts[state.lang][reason];
    return own || t("suppressed.title");
  }

  /** A figure's value element: the number, "< k" greyed when suppressed, "–" when absent. */
  function valueNode(tag, testid, name, fig, extraClass) {
    const f = fig || { value: null, suppressed: false };
    const attrs = {
      "class": "num-value" + (extraClass ? " " + extraClass : ""),
      "data-testid": testid,
      "data-value": f.value === null || f.value === undefined ? "" : String(f.value),
      "data-suppressed": f.suppressed ? "true" : "false",
      "data-provisional": f.provisional ? "true" : "false",
    };
    if (f.provisional && !f.suppressed) {
      // Retention and conversion look ahead of their period: until that window has closed the
      // figure can still grow.
      attrs["class"] += " provisional";
      attrs.title = t("provisional.title");
    }
    if (f.suppressed) {
      // Hidden: the engine's reason, in plain words (primary, secondary or linked).
      attrs["class"] += " suppressed";
      attrs["data-reason"] = f.reason || "";
      attrs.title = reasonText(f.reason);
      attrs.text = t("hidden");
    } else if (f.value === null || f.value === undefined) {
      attrs["class"] += " missing";
      attrs.title = t("missing");
      attrs.text = "\u2013";
    } else {
      attrs.text = formatValue(name, f.value);
    }
    return el(tag, attrs);
  }

  // ------------------------------------------------------------------------------ API
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // Relative to the page, so that the dashboard also works behind a path prefix.
  async function api(path) {
    let response;
    try {
      response = await fetch(path, {
        headers: { "Authorization": "Bearer " + state.key, "Accept": "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
    } catch (e) {
      throw new ApiError(0, "network");
    }
    if (!response.ok) throw new ApiError(response.status, "HTTP " + response.status);
    return response.json();
  }

  // ------------------------------------------------------------------------------ periods
  function pad(n) {
    return String(n).padStart(2, "0");
  }
  function amsterdamToday() {
    const parts = new Intl.DateTimeFormat("en-CA", {
      timeZone: "Europe/Amsterdam", year: "numeric", month: "2-digit",
    }).formatToParts(new Date());
    const get = (type) => Number(parts.find((p) => p.type === type).value);
    return { year: get("year"), month: get("month") };
  }
  function monthLabel(m) {
    return m.year + "-" + pad(m.month);
  }
  function parsePeriod(label) {
    let m = /^(\d{4})-(\d{2})$/.exec(label);
    if (m) return { kind: "month", year: +m[1], first: +m[2], last: +m[2] };
    m = /^(\d{4})-Q([1-4])$/.exec(label);
    if (m) return { kind: "quarter", year: +m[1], first: +m[2] * 3 - 2, last: +m[2] * 3, q: +m[2] };
    m = /^(\d{4})$/.exec(label);
    if (m) return { kind: "year", year: +m[1], first: 1, last: 12 };
    return null;
  }
  function periodOf(kind, year, month) {
    if (kind === "month") return year + "-" + pad(month);
    if (kind === "quarter") return year + "-Q" + Math.ceil(month / 3);
    return String(year);
  }
  function periodName(label) {
    const p = parsePeriod(label);
    if (!p) return label;
    if (p.kind === "month") {
      return new Intl.DateTimeFormat(locale(), { month: "long", year: "numeric", timeZone: "UTC" })
        .format(new Date(Date.UTC(p.year, p.first - 1, 1)));
    }
    if (p.kind === "quarter") return t("period.quarterName", { n: p.q, year: p.year });
    return String(p.year);
  }
  function periodOptions(kind) {
    const now = state.current;
    const out = [];
    if (kind === "month") {
      for (let i = 0; i < 36; i++) {
        const idx = now.year * 12 + now.month - 1 - i;
        out.push(periodOf("month", Math.floor(idx / 12), (idx % 12) + 1));
      }
    } else if (kind === "quarter") {
      const q = Math.ceil(now.month / 3);
      for (let i = 0; i < 12; i++) {
        const idx = now.year * 4 + q - 1 - i;
        out.push(Math.floor(idx / 4) + "-Q" + ((idx % 4) + 1));
      }
    } else {
      for (let i = 0; i < 6; i++) out.push(String(now.year - i));
    }
    return out;
  }
  /** The last month of a period, but never later than the current month. */
  function trendUntil(label) {
    const p = parsePeriod(label);
    const end = p.year * 12 + p.last - 1;
    const cur = state.current.year * 12 + state.current.month - 1;
    const idx = Math.min(end, cur);
    return monthLabel({ year: Math.floor(idx / 12), month: (idx % 12) + 1 });
  }

  function fillPeriodSelect() {
    const select = $("period-value");
    const labels = periodOptions(state.kind);
    if (state.period && !labels.includes(state.period)) labels.unshift(state.period);
    clear(select);
    for (const label of labels) {
      select.appendChild(el("option", { value: label, text: periodName(label) }));
    }
    select.value = state.period;
    $("period-kind").value = state.kind;
  }

  // ------------------------------------------------------------------------------ loading
  async function defaultPeriod() {
    // The current month, unless it has nothing to show yet: then the latest month that has.
    const now = monthLabel(state.current);
    if (state.view === "own") return ownDefaultPeriod(now);
    const trend = await api("v1/trend?months=12&until=" + encodeURIComponent(now));
    const months = trend.months || [];
    for (let i = months.length - 1; i >= 0; i--) {
      const fig = months[i].participants_unique;
      if (fig && !fig.suppressed && fig.value) return months[i].period;
    }
    return now;
  }

  async function ownDefaultPeriod(now) {
    // The latest of the last twelve months in which the organisation has figures to show.
    const p = parsePeriod(now);
    for (let i = 0; i < 12; i++) {
      const idx = p.year * 12 + p.first - 1 - i;
      const label = periodOf("month", Math.floor(idx / 12), (idx % 12) + 1);
      const own = await released("v1/own/indicators?period=" + encodeURIComponent(label));
      if (!own) return now;
      const shown = ["s2.participants_unique", "s3.referrals"]
        .some((path) => { const f = get(own, path); return f && !f.suppressed && f.value; });
      if (shown) return label;
    }
    return now;
  }

  /** An answer from the release; null while no release has been cut yet (503). */
  async function released(path) {
    try {
      return await api(path);
    } catch (e) {
      if (e instanceof ApiError && e.status === 503) return null;
      throw e;
    }
  }

  async function load(period) {
    const seq = ++state.seq;
    const main = $("main");
    main.setAttribute("aria-busy", "true");
    main.dataset.state = "loading";
    setStatus(t("loading"));
    try {
      const q = encodeURIComponent(period);
      let data;
      if (state.view === "own") {
        const own = await released("v1/own/indicators?period=" + q);
        data = { totals: own, nb: null, roles: null, trend: [] };
      } else {
        const [totals, nb, roles, trend] = await Promise.all([
          api("v1/indicators?period=" + q),
          released("v1/indicators?period=" + q + "&by=" + state.by),
          released("v1/indicators?period=" + q + "&by=referrer_role"),
          api("v1/trend?months=12&until=" + encodeURIComponent(trendUntil(period))),
        ]);
        data = { totals, nb, roles, trend: trend.months || [] };
      }
      if (seq !== state.seq) return; // a newer choice is already on its way
      state.data = data;
      state.period = period;
      render();
      setStatus(t("loaded", { period: periodName(period) }));
      main.dataset.period = period;
      main.dataset.view = state.view;
      main.dataset.by = state.by;
      main.dataset.state = "ready";
    } catch (e) {
      if (seq !== state.seq) return;
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        askForKey(true);
        return;
      }
      main.dataset.state = "error";
      setStatus(t("error", { detail: e.message }), true);
    } finally {
      if (seq === state.seq) main.setAttribute("aria-busy", "false");
    }
  }

  function setStatus(text, isError) {
    const node = $("status");
    node.textContent = text;
    node.classList.toggle("error", Boolean(isError));
  }

  // ------------------------------------------------------------------------------ rendering
  function render() {
    if (!state.data) return;
    const own = state.view === "own";
    const d = state.data.totals;
    fillPeriodSelect();
    $("subtitle").textContent = t(own ? "subtitle.own" : "subtitle");
    for (const id of ["s1", "trend-panel", "nb-panel", "roles-panel", "lists-panel"]) $(id).hidden = own;
    $("own-head").hidden = !own;
    const view = $("view");
    view.hidden = !state.coalition;
    view.textContent = t(own ? "view.coalition" : "view.own");
    if (!d) {
      // Own figures before the first release: nothing to show but the reason.
      for (const id of ["s1", "s2", "s3"]) $(id).hidden = true;
      $("own-lead").textContent = t("nb.missing");
      $("released").textContent = t("released.none");
      return;
    }
    for (const id of ["s2", "s3"]) $(id).hidden = false;
    $("range").textContent = t("range", { from: dateName(d.from), to: dateName(d.to) });
    const newest = d.freshness && d.freshness.newest_event_at;
    const fresh = $("freshness");
    fresh.dataset.value = newest || "";
    fresh.textContent = newest ? t("fresh", { time: timeName(newest) }) : t("fresh.none");
    // Figures served while a refresh runs (VERBINDING_INDICATOR_MAX_STALE_SECONDS): say so,
    // and from when they are, rather than let a reader take them for the newest.
    const stale = !own && d.freshness && d.freshness.stale && d.freshness.figures_as_of;
    fresh.dataset.stale = stale ? "true" : "false";
    if (stale) fresh.textContent += " " + t("fresh.stale", { time: timeName(d.freshness.figures_as_of) });
    // From when the breakdowns are (domain.md §7 rule 6): the release's moment.
    const releasedAt = own ? d.released_at : (state.data.nb && state.data.nb.released_at) || d.released_at;
    const rel = $("released");
    rel.dataset.value = releasedAt || "";
    rel.title = t("released.hint");
    rel.textContent = releasedAt ? t("released", { time: timeName(releasedAt) }) : t("released.none");
    document.querySelector(".legend .pill").textContent = t("hidden");
    $("legend-text").textContent = t("legend");
    renderReasons(d);
    if (own) {
      $("own-lead").textContent = t("own.lead", { org: d.organisation_id, time: releasedAt ? timeName(releasedAt) : "" });
    } else {
      renderPrevalence(d);
      renderTrend(state.data.trend);
      renderNeighbourhoods(state.data.nb);
      renderRoles(state.data.roles ? state.data.roles.breakdown || [] : null);
      renderBars($("trained"), "trained", d.s3.people_trained_by_role || {});
      renderBars($("signals"), "signal", d.s3.referrals_by_signal || {});
    }
    renderCards(d);
    renderFunnel(d.s3);
  }

  function renderReasons(d) {
    const list = clear($("reasons-list"));
    const texts = (d.reasons && d.reasons[state.lang]) || {};
    for (const reason of ["primary", "secondary", "linked"]) {
      if (!texts[reason]) continue;
      list.appendChild(el("dt", { "data-testid": "reason-name", "data-key": reason, text: t("reason." + reason) }));
      list.appendChild(el("dd", { "data-testid": "reason-text", "data-key": reason, text: texts[reason] }));
    }
  }

  function dateName(iso) {
    const [y, m, day] = iso.split("-").map(Number);
    return new Intl.DateTimeFormat(locale(), { day: "numeric", month: "long", year: "numeric", timeZone: "UTC" })
      .format(new Date(Date.UTC(y, m - 1, day)));
  }
  function timeName(iso) {
    return new Intl.DateTimeFormat(locale(), {
      day: "numeric", month: "long", year: "numeric", hour: "2-digit", minute: "2-digit",
      timeZone: "Europe/Amsterdam",
    }).format(new Date(iso));
  }

  function get(obj, path) {
    return path.split(".").reduce((o, part) => (o && typeof o === "object" ? o[part] : undefined), obj);
  }

  function renderPrevalence(d) {
    const box = clear($("prevalence"));
    if (!d.s1) return;
    for (const name of PREVALENCE) {
      const path = "s1." + name;
      const fig = d.s1[name];
      if (!fig) continue;
      const [label, explain] = figureText(path);
      const base = fig.baseline;
      const row = el("div", { "class": "prev-row", "data-testid": "prev-" + name });
      const head = el("div", { "class": "prev-head" }, [
        el("h4", { "class": "prev-label", text: label }),
        el("p", { "class": "prev-numbers" }, [
          valueNode("span", "fig-" + path, name, fig, "big"),
          base === undefined || base === null ? null : el("span", {
            "class": "prev-base",
            "data-testid": "baseline-" + path,
            "data-value": String(base),
            text: t("baseline.value", { value: fmtPercent(base) }),
          }),
        ]),
      ]);
      row.appendChild(head);
      // Two bars on one scale (0–100%): this period, and the baseline.
      const bars = el("div", { "class": "prev-bars", "aria-hidden": "true" });
      const nowBar = el("div", { "class": "prev-bar now" + (fig.suppressed ? " is-suppressed" : "") });
      const nowFill = el("span", { "class": "fill" });
      nowFill.style.width = fig.value === null ? "0%" : Math.max(0.5, fig.value * 100) + "%";
      nowBar.appendChild(el("span", { "class": "bar-name", text: t("now") }));
      nowBar.appendChild(el("span", { "class": "track" }, [nowFill]));
      bars.appendChild(nowBar);
      if (base !== undefined && base !== null) {
        const baseFill = el("span", { "class": "fill" });
        baseFill.style.width = base * 100 + "%";
        bars.appendChild(el("div", { "class": "prev-bar base" }, [
          el("span", { "class": "bar-name", text: t("baseline") }),
          el("span", { "class": "track" }, [baseFill]),
        ]));
      }
      row.appendChild(bars);
      if (fig.value !== null && base !== undefined && base !== null) {
        const diff = Math.round(fig.value * 100) - Math.round(base * 100);
        const word = diff < 0 ? "compare.lower" : diff > 0 ? "compare.higher" : "compare.equal";
        row.appendChild(el("p", { "class": "compare " + (diff < 0 ? "good" : diff > 0 ? "bad" : ""), text: t(word) }));
      }
      row.appendChild(el("p", { "class": "explain", text: explain }));
      box.appendChild(row);
    }
  }

  function card(path, fig, baselineYear) {
    const name = path.split(".").pop();
    const [label, explain] = figureText(path);
    const value = el("p", { "class": "card-value" }, [valueNode("span", "fig-" + path, name, fig, "big")]);
    const unit = unitOf(name);
    if (unit && fig && fig.value !== null && !fig.suppressed) value.appendChild(el("span", { "class": "unit", text: " " + unit }));
    const node = el("article", { "class": "card", "data-figure": path }, [
      el("h3", { "class": "card-label", text: label }),
      value,
    ]);
    if (fig && "baseline" in fig) {
      const base = fig.baseline;
      const text = base === null || base === undefined
        ? t("baseline.none")
        : name === "growth_vs_baseline"
          ? t("baseline.same", { year: baselineYear, value: fmtCount(base) })
          : t("baseline.value", { value: RATES.has(name) ? fmtPercent(base) : fmtCount(base) });
      node.appendChild(el("p", {
        "class": "card-baseline",
        "data-testid": "baseline-" + path,
        "data-value": base === null || base === undefined ? "" : String(base),
        text,
      }));
    }
    if (explain) node.appendChild(el("p", { "class": "explain", text: explain }));
    return node;
  }

  /** Every figure of a subgoal as [path, figure], nested groups flattened (referral_outcome). */
  function figuresOf(d, subgoal) {
    const out = [];
    const walk = (obj, prefix) => {
      for (const [name, value] of Object.entries(obj || {})) {
        if (!value || typeof value !== "object") continue;
        const path = prefix + "." + name;
        if ("value" in value && "suppressed" in value) out.push([path, value]);
        else if (!NOT_CARDS.has(path)) walk(value, path);
      }
    };
    walk(d[subgoal], subgoal);
    return out;
  }

  function renderCards(d) {
    const extra = clear($("extra"));
    for (const subgoal of ["s1", "s2", "s3"]) {
      const box = clear($(subgoal + "-cards"));
      const all = new Map(figuresOf(d, subgoal));
      for (const name of CARD_ORDER[subgoal]) {
        const path = subgoal + "." + name;
        if (all.has(path)) box.appendChild(card(path, all.get(path), d.baseline_year));
        all.delete(path);
      }
      for (const name of PREVALENCE) all.delete(subgoal + "." + name);
      // Figures this page does not know yet are still shown, under their own name.
      for (const [path, fig] of all) extra.appendChild(card(path, fig, d.baseline_year));
    }
    $("extra-wrap").hidden = !extra.firstChild;
  }

  // A line chart of unique and new participants; suppressed months break the line.
  function renderTrend(months) {
    const box = clear($("trend"));
    if (!months.length) return;
    const W = 760, H = 280, L = 48, R = 16, T = 16, B = 44;
    const values = [];
    for (const m of months) {
      for (const s of ["participants_unique", "participants_new"]) {
        if (m[s] && m[s].value !== null) values.push(m[s].value);
      }
    }
    const max = niceMax(Math.max(k(), ...values));
    const x = (i) => L + (months.length === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (months.length - 1));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const first = periodName(months[0].period), last = periodName(months[months.length - 1].period);
    const chart = svg("svg", {
      viewBox: "0 0 " + W + " " + H, "class": "trend-svg", role: "img",
      "aria-label": t("trend.aria", { from: first, to: last }),
    });
    // grid and y axis
    const ticks = 4;
    for (let i = 0; i <= ticks; i++) {
      const v = (max * i) / ticks;
      chart.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), "class": "grid" }));
      chart.appendChild(svg("text", { x: L - 8, y: y(v) + 4, "class": "axis", "text-anchor": "end", text: fmtCount(v) }));
    }
    // the band below k: where a value cannot be shown
    chart.appendChild(svg("rect", { x: L, y: y(k()), width: W - L - R, height: y(0) - y(k()), "class": "kband" }));
    months.forEach((m, i) => {
      const p = parsePeriod(m.period);
      const short = new Intl.DateTimeFormat(locale(), { month: "short", timeZone: "UTC" })
        .format(new Date(Date.UTC(p.year, p.first - 1, 1))).replace(".", "");
      chart.appendChild(svg("text", { x: x(i), y: H - B + 18, "class": "axis", "text-anchor": "middle", text: short }));
      if (i === 0 || p.first === 1) {
        chart.appendChild(svg("text", { x: x(i), y: H - B + 34, "class": "axis year", "text-anchor": "middle", text: p.year }));
      }
    });
    const series = [
      ["participants_unique", "unique", t("trend.unique")],
      ["participants_new", "new", t("trend.new")],
    ];
    for (const [name, cls, label] of series) {
      let d = "";
      let open = false;
      months.forEach((m, i) => {
        const f = m[name];
        if (f && f.value !== null && !f.suppressed) {
          d += (open ? " L " : " M ") + x(i).toFixed(1) + " " + y(f.value).toFixed(1);
          open = true;
        } else {
          open = false;
        }
      });
      chart.appendChild(svg("path", { d: d.trim() || "M 0 0", "class": "line " + cls }));
      months.forEach((m, i) => {
        const f = m[name];
        const shown = f && f.value !== null && !f.suppressed;
        const point = svg("circle", {
          cx: x(i), cy: shown ? y(f.value) : y(k() / 2), r: shown ? 4.5 : 3.5,
          "class": "dot " + cls + (shown ? "" : " hidden-value"),
        }, [svg("title", { text: label + ", " + periodName(m.period) + ": " + (shown ? fmtCount(f.value) : "< " + k()) })]);
        chart.appendChild(point);
      });
    }
    const legend = el("ul", { "class": "chart-legend" }, series.map(([, cls, label]) =>
      el("li", {}, [el("span", { "class": "swatch " + cls, "aria-hidden": "true" }), el("span", { text: label })])));
    legend.appendChild(el("li", {}, [el("span", { "class": "swatch kband", "aria-hidden": "true" }), el("span", { text: t("legend", { k: k() }) })]));
    box.appendChild(legend);
    // On a narrow screen the chart keeps a readable size and scrolls sideways.
    box.appendChild(el("div", { "class": "chart-scroll" }, [chart]));
    // The same numbers as a table, for screen readers and for whoever wants the figures.
    const rows = months.map((m) => el("tr", { "data-testid": "trend-row", "data-key": m.period }, [
      el("th", { scope: "row", text: periodName(m.period) }),
      el("td", { "class": "num" }, [valueNode("span", "trend-unique", "participants_unique", m.participants_unique)]),
      el("td", { "class": "num" }, [valueNode("span", "trend-new", "participants_new", m.participants_new)]),
    ]));
    box.appendChild(el("details", { "class": "as-table" }, [
      el("summary", { text: t("trend.table") }),
      el("table", { "class": "table compact" }, [
        el("thead", {}, [el("tr", {}, [
          el("th", { scope: "col", text: t("trend.month") }),
          el("th", { scope: "col", "class": "num", text: t("trend.unique") }),
          el("th", { scope: "col", "class": "num", text: t("trend.new") }),
        ])]),
        el("tbody", {}, rows),
      ]),
    ]));
  }

  function niceMax(v) {
    const exp = Math.pow(10, Math.floor(Math.log10(v)));
    for (const step of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
      if (step * exp >= v) return step * exp;
    }
    return 10 * exp;
  }

  function bar(value, max, cls) {
    const track = el("span", { "class": "mini-track", "aria-hidden": "true" });
    const fill = el("span", { "class": "mini-fill " + (cls || "") });
    fill.style.width = (value && max ? Math.max(1, (value / max) * 100) : 0) + "%";
    track.appendChild(fill);
    return track;
  }

  function renderNeighbourhoods(answer) {
    const body = clear($("nb-body"));
    const by = state.by;
    $("nb-title").textContent = t(by === "neighbourhood" ? "nb.title" : "nb.title." + by);
    $("nb-hint").textContent = t(by === "neighbourhood" ? "nb.hint" : "nb.hint." + by);
    $("nb-col-key").textContent = t("by." + by);
    $("nb-by").value = by;
    const withLonely = by !== "category";
    $("nb-col-lonely").hidden = !withLonely;
    const missing = $("nb-missing");
    missing.hidden = Boolean(answer);
    missing.textContent = answer ? "" : t("nb.missing");
    const cells = answer ? answer.breakdown || [] : [];
    const visible = cells.map((c) => get(c, "s2.participants_unique.value")).filter((v) => v !== null && v !== undefined);
    const max = Math.max(1, ...visible);
    for (const cell of cells) {
      const unique = get(cell, "s2.participants_unique");
      const uniqueCell = el("td", { "class": "num with-bar" }, [
        valueNode("span", "nb-participants_unique", "participants_unique", unique),
        bar(unique && !unique.suppressed ? unique.value : 0, max),
      ]);
      const row = [
        el("th", { scope: "row", "data-testid": "nb-key", text: keyLabel(cell.key) }),
        uniqueCell,
        el("td", { "class": "num" }, [valueNode("span", "nb-participants_new", "participants_new", get(cell, "s2.participants_new"))]),
        el("td", { "class": "num" }, [valueNode("span", "nb-attendances", "attendances", get(cell, "s2.attendances"))]),
      ];
      if (withLonely) {
        const lonely = get(cell, "s1.prevalence_lonely");
        const lonelyCell = el("td", { "class": "num" }, [valueNode("span", "nb-prevalence_lonely", "prevalence_lonely", lonely)]);
        if (lonely && lonely.baseline !== undefined && lonely.baseline !== null) {
          lonelyCell.appendChild(el("span", {
            "class": "cell-base", "data-testid": "nb-prevalence_lonely-baseline", "data-value": String(lonely.baseline),
            text: t("baseline.value", { value: fmtPercent(lonely.baseline) }),
          }));
        }
        row.push(lonelyCell);
      }
      body.appendChild(el("tr", { "data-testid": "nb-row", "data-key": cell.key }, row));
    }
  }

  function renderFunnel(s3) {
    const box = clear($("funnel"));
    // The stages in their order; each counts the referrals that got at least that far.
    const steps = FUNNEL.map((name) => [name, "funnel." + name]);
    const top = s3.referrals && s3.referrals.value;
    steps.forEach(([name, label], i) => {
      const fig = s3[name];
      const step = el("div", { "class": "funnel-step step-" + i, role: "listitem" });
      const shape = el("div", { "class": "funnel-shape" });
      const width = fig && fig.value !== null && top ? Math.max(8, (fig.value / top) * 100) : 8;
      shape.style.width = width + "%";
      if (!fig || fig.value === null) shape.classList.add("is-suppressed");
      step.appendChild(el("div", { "class": "funnel-label" }, [
        el("span", { "class": "funnel-name", text: t(label) }),
        valueNode("span", "funnel-" + name, name, fig, "big"),
      ]));
      step.appendChild(el("div", { "class": "funnel-track", "aria-hidden": "true" }, [shape]));
      box.appendChild(step);
    });
  }

  function renderRoles(cells) {
    const body = clear($("roles-body"));
    if (!cells) {
      body.appendChild(el("tr", {}, [el("td", { colspan: String(FUNNEL.length + 2), "class": "empty", "data-testid": "roles-missing", text: t("nb.missing") })]));
      return;
    }
    const max = Math.max(1, ...cells.map((c) => get(c, "s3.referrals.value") || 0));
    // Most referrals first; the suppressed ones after, in the API's order.
    const sorted = cells.slice().sort((p, q) => (get(q, "s3.referrals.value") || 0) - (get(p, "s3.referrals.value") || 0));
    for (const cell of sorted) {
      const figs = FUNNEL.map((name) => get(cell, "s3." + name));
      const funnel = el("div", { "class": "stack", "aria-hidden": "true" });
      figs.forEach((fig, i) => {
        const part = el("span", { "class": "stack-bar f-" + i });
        part.style.width = fig && fig.value ? (fig.value / max) * 100 + "%" : "0";
        funnel.appendChild(part);
      });
      body.appendChild(el("tr", { "data-testid": "role-row", "data-key": cell.key }, [
        el("th", { scope: "row", text: keyLabel(cell.key) }),
        ...FUNNEL.map((name, i) => el("td", { "class": "num" }, [valueNode("span", "role-" + name, name, figs[i])])),
        el("td", { "class": "bar-col" }, [funnel]),
      ]));
    }
  }

  function renderBars(box, testid, figures) {
    clear(box);
    const entries = Object.entries(figures);
    if (!entries.length) {
      box.appendChild(el("p", { "class": "empty", text: t("empty") }));
      return;
    }
    entries.sort((p, q) => (q[1].value || 0) - (p[1].value || 0));
    const max = Math.max(1, ...entries.map(([, f]) => f.value || 0));
    for (const [key, fig] of entries) {
      box.appendChild(el("div", { "class": "bar-row", "data-testid": testid + "-row", "data-key": key }, [
        el("span", { "class": "bar-label", text: keyLabel(key) }),
        bar(fig.suppressed ? 0 : fig.value, max, "accent"),
        valueNode("span", testid + "-value", "count", fig),
      ]));
    }
  }

  // ------------------------------------------------------------------------------ language
  function applyLanguage() {
    document.documentElement.lang = state.lang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
    const other = state.lang === "nl" ? "en" : "nl";
    const button = $("lang");
    button.textContent = TEXTS[state.lang]["lang.switch"];
    button.setAttribute("lang", other);
    document.title = t("title") + " \u2014 " + (state.lang === "nl" ? "cijfers" : "figures");
    if (state.data) {
      render();
      setStatus(t("loaded", { period: periodName(state.period) }));
    }
  }

  // ------------------------------------------------------------------------------ key
  function keyFromFragment() {
    const hash = window.location.hash.replace(/^#/, "");
    if (!hash) return null;
    const params = new URLSearchParams(hash);
    const key = params.get("key");
    if (key) {
      // Out of the address bar (and the history) at once: it is a secret.
      params.delete("key");
      const rest = params.toString();
      window.history.replaceState(null, "", window.location.pathname + window.location.search + (rest ? "#" + rest : ""));
    }
    return key;
  }

  function askForKey(rejected) {
    state.key = null;
    const s = storage("session");
    if (s) s.removeItem(STORE_KEY);
    $("content").hidden = true;
    $("forget").hidden = true;
    $("key-panel").hidden = false;
    const err = $("key-error");
    err.hidden = !rejected;
    err.textContent = rejected ? t("key.rejected") : "";
    $("main").dataset.state = rejected ? "key-rejected" : "need-key";
    $("main").setAttribute("aria-busy", "false");
    $("key-input").focus();
  }

  async function start(key) {
    state.key = key;
    const s = storage("session");
    if (s) s.setItem(STORE_KEY, key);
    $("key-panel").hidden = true;
    $("content").hidden = false;
    $("forget").hidden = false;
    try {
      let period = state.period;
      try {
        state.view = "coalition";
        const first = await defaultPeriod();
        state.coalition = true;
        period = period || first;
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 403) throw e;
        // A partner's key without the coalition's scope: its own organisation's figures.
        state.coalition = false;
        state.view = "own";
        period = period || (await defaultPeriod());
      }
      const p = parsePeriod(period);
      state.kind = p.kind;
      state.period = period;
      fillPeriodSelect();
      await load(period);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) askForKey(true);
      else setStatus(t("error", { detail: e.message }), true);
    }
  }

  // ------------------------------------------------------------------------------ wiring
  function init() {
    const saved = storage("local") && storage("local").getItem(STORE_LANG);
    state.lang = saved === "en" ? "en" : "nl";
    state.current = amsterdamToday();
    applyLanguage();

    $("lang").addEventListener("click", () => {
      state.lang = state.lang === "nl" ? "en" : "nl";
      const l = storage("local");
      if (l) l.setItem(STORE_LANG, state.lang);
      applyLanguage();
    });
    $("forget").addEventListener("click", () => askForKey(false));
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("key-input").value.trim();
      $("key-input").value = "";
      if (value) start(value);
    });
    $("period-kind").addEventListener("change", () => {
      // Keep the moment: October 2026 becomes the fourth quarter of 2026, then 2026.
      const p = parsePeriod(state.period);
      const idx = Math.min(p.year * 12 + p.last - 1, state.current.year * 12 + state.current.month - 1);
      state.kind = $("period-kind").value;
      state.period = periodOf(state.kind, Math.floor(idx / 12), (idx % 12) + 1);
      fillPeriodSelect();
      load(state.period);
    });
    $("period-value").addEventListener("change", () => {
      state.period = $("period-value").value;
      load(state.period);
    });
    $("nb-by").addEventListener("change", () => {
      state.by = $("nb-by").value;
      load(state.period);
    });
    $("view").addEventListener("click", () => {
      state.view = state.view === "own" ? "coalition" : "own";
      load(state.period);
    });

    const key = keyFromFragment() || (storage("session") && storage("session").getItem(STORE_KEY));
    if (key) start(key);
    else askForKey(false);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

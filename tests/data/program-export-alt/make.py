#!/usr/bin/env python3
"""Regenerates this directory from ../program-export (the CSV sample): the
same records as a nested JSON array (screenings.json), XML (referrals.xml,
screenings.xml) and NDJSON (consents.ndjson), so tests can check that every
reader yields the same Bundles and the same rejections as the CSV reader.
Empty CSV values are left out, as a program's JSON/XML export would."""
import csv, json, os
from xml.sax.saxutils import escape, quoteattr

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, "..", "program-export")

def rows(name):
    with open(os.path.join(src, name), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))

def num(v):
    try:
        return int(v)
    except ValueError:
        return v

def prune(o):
    if isinstance(o, dict):
        o = {k: prune(v) for k, v in o.items()}
        return {k: v for k, v in o.items() if v not in ("", None, {})}
    return o

def screening_obj(r):
    return prune({
        "record_id": r["record_id"], "family_id": r["family_id"],
        "caregiver": {"id": r["caregiver_id"], "first_name": r["caregiver_first_name"],
                      "last_name": r["caregiver_last_name"], "dob": r["caregiver_dob"],
                      "phone": r["caregiver_phone"]},
        "child": {"id": r["child_id"], "first_name": r["child_first_name"],
                  "last_name": r["child_last_name"], "dob": r["child_dob"], "sex": r["child_sex"]},
        "practice": {"npi": r["pediatric_practice_npi"], "name": r["pediatric_practice_name"]},
        "home_visitor_id": r["home_visitor_id"], "screen_date": r["screen_date"],
        "instrument": r["instrument"], "subject": r["subject"],
        "total_score": num(r["total_score"]),
        "asq": {"interval_months": num(r["asq_interval_months"]),
                **{d: num(r["asq_" + d]) for d in
                   ("communication", "gross_motor", "fine_motor", "problem_solving", "personal_social")}},
        "result": r["result"]})

def el(name, text, attrs=""):
    return "" if text == "" else f"<{name}{attrs}>{escape(text)}</{name}>"

def attr(name, v):
    return "" if v == "" else f" {name}={quoteattr(v)}"

scr = rows("screenings.csv")
with open(os.path.join(here, "screenings.json"), "w", encoding="utf-8") as f:
    f.write('{\n  "exported": "2026-11-01",\n  "screenings": [\n')
    f.write(",\n".join("    " + json.dumps(screening_obj(r), ensure_ascii=False) for r in scr))
    f.write("\n  ]\n}\n")

with open(os.path.join(here, "screenings.xml"), "w", encoding="utf-8") as f:
    f.write('<?xml version="1.0" encoding="UTF-8"?>\n<export xmlns="urn:example:hv">\n <screenings>\n')
    for r in scr:
        asq = "".join(el(d.replace("_", "-"), r["asq_" + d]) for d in
                      ("communication", "gross_motor", "fine_motor", "problem_solving", "personal_social"))
        f.write(f'  <screening{attr("id", r["record_id"])}{attr("family", r["family_id"])}>'
                f'<caregiver{attr("id", r["caregiver_id"])}>{el("given", r["caregiver_first_name"])}'
                f'{el("family", r["caregiver_last_name"])}{el("dob", r["caregiver_dob"])}{el("phone", r["caregiver_phone"])}</caregiver>\n'
                f'   <child{attr("id", r["child_id"])}{attr("sex", r["child_sex"])}>{el("given", r["child_first_name"])}'
                f'{el("family", r["child_last_name"])}{el("dob", r["child_dob"])}</child>\n'
                f'   <practice{attr("npi", r["pediatric_practice_npi"])}>{escape(r["pediatric_practice_name"])}</practice>'
                f'<visitor{attr("id", r["home_visitor_id"])}/>{el("date", r["screen_date"])}'
                f'<instrument{attr("subject", r["subject"])}>{escape(r["instrument"])}</instrument>'
                f'{el("score", r["total_score"])}<asq{attr("interval", r["asq_interval_months"])}>{asq}</asq>'
                f'{el("result", r["result"])}</screening>\n')
    f.write(" </screenings>\n</export>\n")

with open(os.path.join(here, "referrals.xml"), "w", encoding="utf-8") as f:
    f.write('<?xml version="1.0" encoding="UTF-8"?>\n<export><referrals>\n')
    for r in rows("referrals.csv"):
        f.write(f'<referral{attr("id", r["referral_id"])}>{el("family", r["family_id"])}'
                f'<caregiver{attr("id", r["caregiver_id"])}>{el("given", r["caregiver_first_name"])}'
                f'{el("family", r["caregiver_last_name"])}{el("dob", r["caregiver_dob"])}</caregiver>'
                f'<child{attr("id", r["child_id"])}{attr("sex", r["child_sex"])}>{el("given", r["child_first_name"])}'
                f'{el("family", r["child_last_name"])}{el("dob", r["child_dob"])}</child>\n'
                f' <visitor{attr("id", r["home_visitor_id"])}/>{el("date", r["referral_date"])}'
                f'{el("service", r["service_type"])}{el("reason", r["reason_record_id"])}'
                f'<to{attr("id", r["referred_to_org_id"])}>{escape(r["referred_to_org_name"])}</to>'
                f'{el("urgency", r["urgency"])}<status{attr("date", r["status_date"])}>{escape(r["status"])}</status>'
                + (f'<notes><![CDATA[{r["notes"]}]]></notes>' if r["notes"] else "") +
                '</referral>\n')
    f.write("</referrals></export>\n")

with open(os.path.join(here, "consents.ndjson"), "w", encoding="utf-8") as f:
    for r in rows("consents.csv"):
        o = dict(r)
        o["scope"] = [s for s in r["scope"].split(",") if s]
        f.write(json.dumps(prune(o), ensure_ascii=False) + "\n")

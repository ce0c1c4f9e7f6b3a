"""DNS rules: injected answers, block-page addresses, bogons, inconsistent answers, failures.

Responsibility: everything the classifier concludes from the probe's DNS observations
compared with the control's resolver, and the address-consistency test the other layers
reuse (:func:`supported`, :func:`refuted`).

Why the consistency test is not OONI's: OONI calls answers consistent when probe and control
share an address or a non-zero ASN, and otherwise flags DNS tampering — which reads CDN,
load-balancer and geo-DNS answers as censorship (ooni/probe#1735, #2235). We call an address
*supported* when the control's resolver gave it, it is on the same AS as one the control got,
or a TLS handshake with it presented a chain that validates for the host (only the site or
its CDN holds that key — the same cure OONI's v0.5 applies by trying TLS on every address).
An address is *refuted* only on positive evidence: its certificate does not validate for the
host while the control's does, or the control cannot reach it while reaching the site's own
addresses. ``dns.inconsistent`` needs an answer with no supported address and a refuted one;
anything in between is judged at the layer that failed. A name the control says does not
exist is no site at all: an answer for it is a resolver's NXDOMAIN rewriting, ``down.dns``.

Encrypted resolvers (DoH, DoT; engines in :data:`ENCRYPTED`) are witnesses, never suspects.
Their answers come through a TLS session whose certificate validated for the provider, so
the volunteer's network cannot have rewritten them: a lie or a failure there is the
provider's own filtering or the provider being unreachable, not this site being blocked on
this network (OONI's dnscheck measures provider reachability as a test of its own). So the
rules below look for lies only in the system and UDP resolvers' answers; a DoH/DoT failure
alone is ``inconclusive`` (``encrypted_dns_failed``); and a DNS verdict against the system or
UDP resolver is corroborated — strong evidence, named in the verdict — when an encrypted
resolver got an answer the control vouches for (:func:`corroborate`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from probe import failures as f
from probe.classify.base import (
    CONTENT_DIFF,
    CONTROL_FETCHED,
    FINGERPRINT,
    NO_EVIDENCE,
    SAME_ADDRESS,
    Case,
    blocked,
    by_failed_fetch,
    down,
    flaky,
    inconclusive,
    without_control,
)
from probe.classify.observations import host, is_bogon, local_test_answer, took, via
from probe.model import DNSObservation, Verdict, VerdictKind

#: Failure string → ``blocked`` method when the control resolves the name.
DNS_METHODS: dict[str, str] = {
    f.DNS_NXDOMAIN: "dns.nxdomain",
    f.DNS_REFUSED: "dns.refused",
    f.DNS_SERVFAIL: "dns.servfail",
    f.GENERIC_TIMEOUT: "dns.timeout",
    # The resolver answered "no such address" for a name that has one: a lie by omission.
    f.DNS_NO_ANSWER: "dns.nxdomain",
    f.DNS_BOGON: "dns.bogon",
    f.DNS_SERVER_MISBEHAVING: "dns.servfail",
}
#: glibc's getaddrinfo reports SERVFAIL, REFUSED and silence alike as EAI_AGAIN
#: (``dns_temporary_failure``; OONI's "resolver hiding the real DNS error", ooni/probe#2029).
#: A slow one is silence (glibc's shortest retry timeout is 1 s), a quick one an error answer.
SILENCE_AFTER_S = 0.9

# When a step failed in several ways, the one reported is the most telling: specific answers
# before silence, silence before local trouble.
_RANK = (f.DNS_NXDOMAIN, f.DNS_REFUSED, f.DNS_SERVFAIL, f.DNS_BOGON, f.GENERIC_TIMEOUT,
         f.DNS_NO_ANSWER, f.DNS_TEMPORARY_FAILURE, f.DNS_SERVER_MISBEHAVING)
#: Control failures meaning "the name does not exist" (an expired domain, a CNAME to nothing).
NONEXISTENT = (f.DNS_NXDOMAIN, f.DNS_NO_ANSWER)
#: Engines of encrypted resolvers (DNS-over-HTTPS, DNS-over-TLS): witnesses, never suspects.
ENCRYPTED = ("doh", "dot")


def plain(observations: Sequence[DNSObservation]) -> list[DNSObservation]:
    """The observations of resolvers the volunteer's network can tamper with (system, UDP)."""
    return [d for d in observations if d.engine not in ENCRYPTED]


def method_for(d: DNSObservation) -> str:
    """The method naming ``d``'s failure (see :data:`DNS_METHODS`)."""
    failure = d.failure or f.DNS_NO_ANSWER
    if failure == f.DNS_TEMPORARY_FAILURE:
        return "dns.timeout" if took(d) >= SILENCE_AFTER_S else "dns.servfail"
    return DNS_METHODS.get(failure, "dns.servfail")


def _rank(d: DNSObservation) -> tuple[int, bool, bool]:
    failure = d.failure or f.DNS_NO_ANSWER
    order = _RANK.index(failure) if failure in _RANK else len(_RANK)
    # Among equals prefer the system resolver and the A query: the path a browser takes.
    return order, d.engine != "system", d.query_type != "A"


# --- address consistency ------------------------------------------------------------------------


def supported(case: Case, ip: str, hostname: str) -> str | None:
    """Why ``ip`` is known to serve ``hostname`` (for the evidence), or None."""
    cv = case.control
    if case.control_about(hostname):
        if ip in cv.dns_addrs:
            return "the control's resolver gave it too"
        asn = case.asn(ip)
        if asn is not None and any(case.asn(c) == asn for c in cv.dns_addrs):
            return f"it is on AS{asn} like the control's answer"
        if any(e.valid for e in cv.at(ip)):
            return "the control completed a handshake with it whose chain validates"
    for t in case.m.tls:
        if (t.ip == ip and t.failure is None and t.verified is True
                and host(t.server_name) == hostname):
            return f"it completed a TLS handshake for {hostname} whose chain validates"
    return None


def refuted(case: Case, ip: str, hostname: str) -> str | None:
    """Positive evidence that ``ip`` does not serve ``hostname`` (for the evidence), or None."""
    cv = case.control
    if not case.control_about(hostname):
        return None
    valid_elsewhere = any(e.valid for e in cv.endpoints if e.ip != ip)
    if valid_elsewhere:
        for t in case.m.tls:
            if (t.ip == ip and t.failure is None and t.verified is False
                    and host(t.server_name) == hostname
                    and case.ctx.fingerprints.interception(t.certificates) is None):
                issuer = f" (issuer {t.certificates[0].issuer})" if t.certificates else ""
                return (f"its certificate for {hostname} does not validate{issuer} while the "
                        "control's does")
        if any(e.handshake_ok and e.verified is False for e in cv.at(ip)):
            return "the control's handshake with it does not validate for the host either"
    reached_own = any(e.connected for e in cv.endpoints if e.ip != ip)
    here = cv.at(ip)
    if reached_own and here and all(e.tcp_done and not e.connected for e in here):
        return "the control cannot connect to it either, but reaches the site's own addresses"
    return None


# --- rules ----------------------------------------------------------------------------------


def _groups(observations: Sequence[DNSObservation]) -> dict[tuple[str, str], list[DNSObservation]]:
    """Observations per resolver (engine, resolver), in order."""
    out: dict[tuple[str, str], list[DNSObservation]] = {}
    for d in observations:
        out.setdefault((d.engine, d.resolver), []).append(d)
    # The system resolver first: it is what the volunteer's browser uses.
    return dict(sorted(out.items(), key=lambda kv: kv[0][0] != "system"))


def _show(d: DNSObservation) -> str:
    return ", ".join(d.addresses) or d.rcode or d.failure or "nothing"


def _control_dns_text(case: Case) -> str:
    cv = case.control
    if cv.resolved:
        return f"the control resolved it to {', '.join(cv.dns_addrs)}"
    if cv.dns_failure:
        return f"the control's resolver failed too ({cv.dns_failure})"
    return "the control did not resolve it"


def dns_injected(case: Case) -> Verdict | None:
    """Two different responses to one UDP query, one of them forged.

    WHY: an on-path injector answers before the real resolver; the genuine answer arrives
    later (OONI v0.5 waits 500 ms for it; our DNS step lingers the same way). A resolver
    sends one response per query, so two that disagree are an anomaly; the forged one is the
    one whose addresses the control does not vouch for (or, with no control, the bogon or
    known block-page address).
    """
    groups: dict[tuple[int, str, str, str], list[DNSObservation]] = {}
    for d in plain(case.m.dns):
        groups.setdefault((d.tx_id, d.resolver, host(d.hostname), d.query_type), []).append(d)
    for (tx_id, resolver, hostname, qtype), group in groups.items():
        parsed = sorted((d for d in group if d.rcode is not None), key=lambda d: d.response_index)
        if len(parsed) < 2:
            continue
        first = parsed[0]
        if all((d.rcode, sorted(d.addresses)) == (first.rcode, sorted(first.addresses))
               for d in parsed[1:]):
            continue

        def genuine(d: DNSObservation, hostname: str = hostname) -> bool | None:
            """True = vouched for, False = forged, None = cannot tell."""
            if any(is_bogon(a) and not local_test_answer(d, a) for a in d.addresses):
                return False
            if any((m := case.ctx.fingerprints.blockpage_ip(a)) and m.confirmed
                   for a in d.addresses):
                return False
            if not case.control_about(hostname):
                return None
            if not d.addresses:
                return case.control.dns_failure in NONEXISTENT and not case.control.resolved
            return any(supported(case, a, hostname) for a in d.addresses)

        verdicts = [genuine(d) for d in parsed]
        forged = next((d for d, g in zip(parsed, verdicts, strict=True) if g is False), None)
        real = next((d for d, g in zip(parsed, verdicts, strict=True) if g is True), None)
        responses = [{"rcode": d.rcode, "addresses": list(d.addresses), "failure": d.failure,
                      "t": d.t, "genuine": g} for d, g in zip(parsed, verdicts, strict=True)]
        common = dict(step="dns", tx_id=tx_id, hostname=hostname, query_type=qtype,
                      resolver=resolver, engine=first.engine, responses=responses)
        text = (f"two different DNS responses to one {qtype} query for {hostname} via "
                f"{via(first)}: {_show(first)} first, then {_show(parsed[1])}")
        if forged is None:
            if real is not None or case.control_about(hostname):
                continue  # both vouched for (a rotating CDN answer), or nothing forged shown
            return without_control(case, "dns.injected", text, **common)
        confidence = FINGERPRINT if real is not None else SAME_ADDRESS
        return blocked(
            case, "dns.injected", confidence,
            f"{text}; forged: {_show(forged)}"
            + (f"; {_control_dns_text(case)}" if case.control_about(hostname) else ""),
            forged=list(forged.addresses) or forged.rcode, **common)
    return None


def _scoped_dns(case: Case) -> list[DNSObservation]:
    """DNS observations for the names the control vouches for: the target's host, and
    redirect hosts the control's own fetch went through."""
    return [d for d in plain(case.m.dns)
            if host(d.hostname) == case.target_host or case.control.visited(host(d.hostname))]


def dns_blockpage_ip(case: Case) -> Verdict | None:
    """An answer that is a known block-page server's address (or a censor's CNAME target).

    WHY: some censors' resolvers answer blocked names with the address of a server showing
    the block page (OONI's QA "DNS spoofed to a block-page server"), or with a CNAME to it
    (Indonesia's ISPs, Citizen Lab's ``dns_isp_id_*`` signatures); a fingerprinted answer
    is strong evidence on its own, whatever the block-page server then does. Only names the
    control vouches for are checked: a redirect's own host may legitimately be that server.
    A field fingerprint its source has not confirmed is weaker: ``blocked`` only when the
    control resolved the name to other addresses, else ``inconclusive``.
    """
    fps = case.ctx.fingerprints
    for d in _scoped_dns(case):
        hostname = host(d.hostname)
        for a in d.answers:
            if a.rtype not in ("A", "AAAA", "CNAME"):
                continue
            match = fps.dns_answer(a.value)
            if match is None or (case.control_about(hostname)
                                 and a.value in case.control.dns_addrs):
                continue
            what = "a known block-page server" if a.rtype != "CNAME" else "a known censor's name"
            tail = f"; {_control_dns_text(case)}" if case.control_about(hostname) else ""
            common = dict(step="dns", tx_id=d.tx_id, hostname=hostname, resolver=d.resolver,
                          engine=d.engine, ip=a.value if a.rtype != "CNAME" else None,
                          cname=a.value if a.rtype == "CNAME" else None,
                          addresses=list(d.addresses), **match.details())
            text = (f"DNS {d.query_type} answer for {hostname} via {via(d)} is "
                    f"{a.rtype + ' ' if a.rtype == 'CNAME' else ''}{a.value}, {what} "
                    f"({match.label}){tail}")
            if match.confirmed:
                return blocked(case, "dns.blockpage", FINGERPRINT, text, **common)
            if case.control_about(hostname) and case.control.resolved:
                return blocked(case, "dns.blockpage", CONTROL_FETCHED,
                               f"{text}; the fingerprint is not confirmed by its source, but "
                               "the control's resolver gives other addresses", **common)
            return inconclusive(
                case, "blockpage_unconfirmed",
                f"{text}; the fingerprint is not confirmed by its source and no control "
                "resolution contradicts the answer", CONTENT_DIFF, symptom="dns.blockpage",
                **common)
    return None


def dns_bogon(case: Case) -> Verdict | None:
    """An answer with a bogon address the control does not give.

    WHY: private, loopback and reserved addresses are never a public site's; OONI's QA
    suite counts "resolver answers 10.10.34.35" and "spoofed to 127.0.0.1" as DNS blocking.
    When the control's resolver gives a bogon too ("127.0.0.1 everywhere"), the site is
    misconfigured everywhere: OONI calls that down, and so do we. Loopback answers of a
    loopback resolver are the local test world and are skipped.
    """
    for d in plain(case.m.dns):
        hostname = host(d.hostname)
        bogons = [a for a in d.addresses if is_bogon(a) and not local_test_answer(d, a)]
        if not bogons:
            continue
        what = (f"DNS {d.query_type} answer for {hostname} via {via(d)} is a bogon address: "
                f"{', '.join(bogons)}")
        common = dict(step="dns", tx_id=d.tx_id, hostname=hostname, query_type=d.query_type,
                      resolver=d.resolver, engine=d.engine, bogons=bogons,
                      addresses=list(d.addresses))
        cv = case.control
        if case.control_about(hostname) and cv.dns_done:
            if any(is_bogon(a) for a in cv.dns_addrs):
                return down(case, "down.dns", CONTROL_FETCHED,
                            f"{what}; the control's resolver gives a bogon too "
                            f"({', '.join(cv.dns_addrs)}): misconfigured everywhere", **common)
            if cv.resolved or cv.dns_failure in NONEXISTENT:
                return blocked(case, "dns.bogon", SAME_ADDRESS,
                               f"{what}; {_control_dns_text(case)}", **common)
        if cv.fetched and cv.visited(hostname):
            return blocked(case, "dns.bogon", CONTROL_FETCHED,
                           f"{what}; the control fetched the page through {hostname}", **common)
        return without_control(case, "dns.bogon", what, **common)
    return None


def dns_nonexistent_name(case: Case) -> Verdict | None:
    """The control says the name does not exist, yet the probe's resolver gave addresses.

    WHY: a name that does not exist is a site nobody can reach, whatever a resolver makes of
    it; the common reason for an answer anyway is the ISP's resolver rewriting NXDOMAIN to its
    own search or advertising page ("NXDOMAIN hijacking": China Telecom's 114so search page in
    the OONI backend fixture web_connectivity_odd_hdr, 2017; Comcast's Domain Helper and
    others, RFC 4924 §2.5.2 on why it breaks clients), not censorship. An answer that is a
    known block page was judged by :func:`dns_blockpage_ip` before this rule. So: ``down``
    (``down.dns``), never ``blocked``.
    """
    hostname = case.target_host
    cv = case.control
    if not case.control_about(hostname) or cv.resolved or cv.dns_failure not in NONEXISTENT:
        return None
    answered = [d for d in plain(case.m.dns) if host(d.hostname) == hostname and d.addresses]
    if not answered:
        return None
    d = answered[0]
    addresses = list(dict.fromkeys(a for x in answered for a in x.addresses))
    return down(
        case, "down.dns", CONTROL_FETCHED,
        f"the control's resolver says {hostname} does not exist ({cv.dns_failure}); "
        f"{via(d)} answered {', '.join(addresses)} all the same (a resolver rewriting "
        "nonexistent names, not a block)",
        step="dns", tx_id=d.tx_id, hostname=hostname, resolver=d.resolver, engine=d.engine,
        addresses=addresses, control_failure=cv.dns_failure)


def dns_inconsistent(case: Case) -> Verdict | None:
    """A resolver's answers differ from the control's, none is supported, one is refuted.

    WHY: see the module docstring — different addresses alone are normal for CDNs; an
    address that fails TLS validation for the host (or that the control cannot reach, or for
    a name that does not exist) while the control's work is a lie.
    """
    hostname = case.target_host
    if not case.control_about(hostname):
        return None
    observations = [d for d in plain(case.m.dns) if host(d.hostname) == hostname]
    for (engine, resolver), group in _groups(observations).items():
        addresses = list(dict.fromkeys(a for d in group for a in d.addresses))
        if not addresses or any(supported(case, a, hostname) for a in addresses):
            continue
        why = [(a, r) for a in addresses if (r := refuted(case, a, hostname)) is not None]
        if not why:
            continue
        ip, reason = why[0]
        d = next(d for d in group if ip in d.addresses)
        asns = {a: case.asn(a) for a in addresses}
        return blocked(
            case, "dns.inconsistent", SAME_ADDRESS if len(why) == len(addresses) else 0.75,
            f"DNS answer for {hostname} via {via(d)} is {', '.join(addresses)}; "
            f"{_control_dns_text(case)}; {ip}: {reason}",
            step="dns", tx_id=d.tx_id, hostname=hostname, resolver=resolver, engine=engine,
            ip=ip, addresses=addresses, reason=reason,
            asns={a: n for a, n in asns.items() if n is not None} or None,
            control_asns={a: n for a in case.control.dns_addrs
                          if (n := case.asn(a)) is not None} or None)
    return None


def dns_failure(case: Case) -> Verdict | None:
    """A resolver failed for the name of the last URL tried.

    WHY: NXDOMAIN, REFUSED, SERVFAIL or silence for a name the control resolves is the
    resolver lying (OONI: "dns"), even when another resolver's answer let the fetch go on —
    the volunteer's browser uses the system resolver. The same failure at the control is the
    site's DNS being broken: ``down.dns`` (OONI's "expected failure": NXDOMAIN everywhere,
    CNAME without A). DoH/DoT failures are about reaching the provider, not about the name:
    they never count (alone, ``inconclusive`` ``encrypted_dns_failed``); a foreign UDP
    resolver's silence is about reaching it: it counts only when every resolver failed.
    """
    a = case.attempt
    groups = _groups(a.dns)
    if not groups:
        return None
    resolved = {k for k, g in groups.items() if any(d.addresses for d in g)}
    failed: list[DNSObservation] = []
    for key, group in groups.items():
        if key in resolved:
            continue
        d = min(group, key=_rank)
        failed.append(d)
    if not failed:
        return None
    all_failed = not resolved
    if all_failed and not plain(failed):
        d = min(failed, key=_rank)
        return inconclusive(
            case, "encrypted_dns_failed",
            f"DNS {d.query_type} lookup of {a.hostname} via {via(d)} failed: {d.failure}, and "
            "no other resolver was asked; an encrypted resolver failing is about reaching "
            "the provider (see dnscheck), not about this site", NO_EVIDENCE,
            step="dns", tx_id=d.tx_id, failure=d.failure, hostname=a.hostname,
            resolver=d.resolver, engine=d.engine,
            failures=[{"resolver": x.resolver, "engine": x.engine, "failure": x.failure}
                      for x in failed])
    if all_failed:
        failed = plain(failed)  # a witness's failure never stands for the network's
    if not all_failed:
        failed = [d for d in failed if d.engine == "system"
                  or (d.engine == "udp" and d.failure not in (f.GENERIC_TIMEOUT, None))]
        if not failed:
            return None
    d = min(failed, key=_rank)
    method = method_for(d)
    hostname = a.hostname
    what = f"DNS {d.query_type} lookup of {hostname} via {via(d)} failed: {d.failure}"
    if len(failed) > 1 or len(groups) > 1:
        what += f" ({len(failed)} of {len(groups)} resolvers failed)"
    common = dict(step="dns", tx_id=d.tx_id, failure=d.failure, hostname=hostname,
                  query_type=d.query_type, resolver=d.resolver, engine=d.engine, rcode=d.rcode,
                  failures=[{"resolver": x.resolver, "engine": x.engine,
                             "failure": x.failure} for x in failed],
                  **a.location_details())
    cv = case.control
    r = case.health_round
    if (method == "dns.timeout" and d.engine == "system" and r is not None
            and r.down.get("resolver") and not r.up.get("resolver")):
        return inconclusive(
            case, "resolver_down",
            f"{what}; the health round at {r.at} found the ISP resolver not answering any "
            "name, so this silence is not about this site", 0.6, **common)
    if case.control_about(hostname) and cv.dns_done:
        if cv.resolved:
            tail = "" if all_failed else "; another resolver's answer worked"
            return blocked(case, method, SAME_ADDRESS,
                           f"{what}; {_control_dns_text(case)}{tail}", **common)
        if not all_failed:
            return None
        same = cv.dns_failure == d.failure
        return down(case, "down.dns", SAME_ADDRESS if same else CONTROL_FETCHED,
                    f"{what}; {_control_dns_text(case)}", **common)
    if not all_failed:
        return None
    if cv.available and cv.disagree:
        return flaky(case, method, what, **common)
    if cv.fetched:
        return blocked(case, method, CONTROL_FETCHED,
                       f"{what}; the control fetched {cv.url or 'the page'}"
                       + (f" through {hostname}" if cv.visited(hostname) else ""), **common)
    if cv.http is not None and not cv.http.ok:
        return by_failed_fetch(case, "dns", method, what, **common)
    return without_control(case, method, what, **common)


# --- encrypted resolvers as witnesses -----------------------------------------------------------


def encrypted_witness(case: Case, hostname: str) -> tuple[DNSObservation, str] | None:
    """An encrypted resolver's answer for ``hostname`` with an address the control (or a
    validating TLS handshake) vouches for, and why; None = no such answer."""
    for d in case.m.dns:
        if d.engine not in ENCRYPTED or host(d.hostname) != hostname:
            continue
        for ip in d.addresses:
            why = supported(case, ip, hostname)
            if why is not None:
                return d, f"{ip}: {why}"
    return None


def corroborate(case: Case, v: Verdict) -> Verdict:
    """``v`` made strong evidence when an encrypted resolver contradicts the lie it names.

    WHY: a DoH/DoT answer travels inside TLS validated for the provider, so the volunteer's
    network could not change it; when it agrees with the control while the system or UDP
    resolver gave a bogon, a block-page address, a refuted address or an error, the network
    tampered with plain DNS only — the pattern OONI reports as DNS blocking that DoH evades
    (its Web Connectivity 0.5 asks a DoH resolver for the same reason). Confidence rises to
    :data:`FINGERPRINT` and the evidence names both answers.
    """
    if (v.verdict is not VerdictKind.BLOCKED or not (v.method or "").startswith("dns.")
            or v.details.get("engine") in ENCRYPTED or v.details.get("step") != "dns"):
        return v
    hostname = v.details.get("hostname") or case.target_host
    found = encrypted_witness(case, str(hostname))
    if found is None:
        return v
    d, why = found
    return dataclasses.replace(
        v, confidence=max(v.confidence, FINGERPRINT),
        evidence=(f"{v.evidence}; the encrypted resolver {via(d)} answered "
                  f"{', '.join(d.addresses)} ({why}), so only plain DNS was tampered with"),
        details={**v.details, "encrypted_resolver": d.resolver, "encrypted_engine": d.engine,
                 "encrypted_tx_id": d.tx_id, "encrypted_addresses": list(d.addresses)})

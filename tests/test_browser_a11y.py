"""Readable in sunlight: every piece of text on the main pages meets WCAG AA contrast (4.5:1, or 3:1 for
large text), measured in Chromium from the computed colours, and every form field has a label."""

from __future__ import annotations

import httpx

from tests.factories import PASSWORD, build_world

# For each element with its own text: its colour against the first opaque background up its ancestors.
CONTRAST = """
() => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(',').map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = ({r, g, b}) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (el) => { for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a >= 1) return c; } return {r: 255, g: 255, b: 255, a: 1}; };
  const failures = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    if (!own || style.visibility === 'hidden' || style.display === 'none' || el.offsetParent === null && style.position !== 'fixed') continue;
    const fg = parse(style.color), bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) failures.push(`${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 20)}" ${ratio.toFixed(2)}`);
  }
  const unlabelled = [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter((f) => !(f.labels && f.labels.length) && !f.getAttribute('aria-label') && !f.closest('label'))
    .map((f) => f.name);
  const unprotected = [...document.querySelectorAll('form')]
    .filter((f) => (f.getAttribute('method') || '').toLowerCase() === 'post')
    .filter((f) => !(f.querySelector('input[name=csrf_token]') || {}).value)
    .map((f) => f.getAttribute('action'));
  return {failures, unlabelled, unprotected};
}
"""


async def _check(page, path: str) -> None:  # type: ignore[no-untyped-def]
    result = await page.evaluate(CONTRAST)
    assert result["failures"] == [], (path, result["failures"])
    assert result["unlabelled"] == [], (path, result["unlabelled"])
    assert result["unprotected"] == [], (path, result["unprotected"])  # every POST form carries its CSRF token


async def test_public_representative_and_office_pages_meet_contrast(live_server: str, phone, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    world = await build_world(sessionmaker)
    async with httpx.AsyncClient(base_url=live_server) as http:
        created = (await http.post("/api/v1/forms", json={"content": "菜场门口积水。", "workroom_code": "LS-01"})).json()
    page = await phone.new_page()
    # The check itself sees a pale text and an unlabelled field.
    await page.goto(live_server + "/track")
    # The pale colour set from script (CSSOM), not as a style attribute, which the CSP blocks.
    await page.evaluate("""() => { document.querySelector('main').insertAdjacentHTML('beforeend',
        '<p id="pale">浅色文字</p><input name="nolabel">'); document.getElementById('pale').style.color = '#aaa'; }""")
    probe = await page.evaluate(CONTRAST)
    assert any("浅色文字" in f for f in probe["failures"]) and probe["unlabelled"] == ["nolabel"]
    await page.evaluate("""() => { document.querySelector('main').insertAdjacentHTML('beforeend',
        '<form method="post" action="/probe"><input type="hidden" name="csrf_token" value=""></form>'); }""")
    assert (await page.evaluate(CONTRAST))["unprotected"] == ["/probe"]
    for path in ("/", "/w/LS-01", "/w/LS-01/duty", "/service-points", "/login", "/track"):
        await page.goto(live_server + path)
        await _check(page, path)
    await page.fill("#f-no", created["tracking_no"])
    await page.fill("#f-code", created["verification_code"])
    await page.click("button[type=submit]:has-text('查询')")
    await page.locator(".track-result").wait_for()
    await _check(page, "/track (result)")

    for who, paths in (("rep", ["/rep", "/rep/duty"]),
                       ("coordinator", ["/office", "/office/forms", f"/office/forms/{created['id']}", "/office/rosters",
                                        "/office/rota", "/office/swaps", "/office/attendance", "/office/service-points",
                                        "/office/funnel", "/office/imports"]),
                       ("handler_a", ["/office/unit"])):
        context = await phone.browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
        try:
            staff = await context.new_page()
            await staff.goto(f"{live_server}/login")
            await staff.fill("#username", who)
            await staff.fill("#password", PASSWORD)
            await staff.click("button[type=submit]:has-text('登录')")
            await staff.wait_for_load_state()
            for path in paths:
                await staff.goto(live_server + path)
                await _check(staff, f"{who} {path}")
        finally:
            await context.close()
    assert world.units  # the world the staff pages list

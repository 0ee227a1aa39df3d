// Debian's Chromium through playwright-core, as every browser test starts
// it (never a downloaded browser; flags from ../shared/STACK.md). A missing
// chromium fails the test with what to install.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export function launchBrowser() {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is not installed (Makefile APT_PACKAGES: chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

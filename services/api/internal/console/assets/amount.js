// Amounts arrive as decimal strings of base units (wei, token units); they are formatted with
// BigInt and string arithmetic only. A Number cannot hold 12.5 ETH in wei exactly, so none is
// ever made from an amount.

const digits = /^-?[0-9]+$/;

// formatUnits("12500000000000000000", 18) === "12.5"; formatUnits("5", 6) === "0.000005".
export function formatUnits(base, decimals) {
  if (typeof base !== "string" || !digits.test(base) || !Number.isInteger(decimals) || decimals < 0 || decimals > 255) {
    return String(base);
  }
  let v = BigInt(base);
  const negative = v < 0n;
  if (negative) v = -v;
  const scale = 10n ** BigInt(decimals);
  const whole = (v / scale).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const frac = decimals === 0 ? "" : (v % scale).toString().padStart(decimals, "0").replace(/0+$/, "");
  return (negative ? "-" : "") + whole + (frac ? "." + frac : "");
}

// amountText is a base-unit amount with its token: "12.5 ETH".
export function amountText(base, decimals, token) {
  return formatUnits(base, decimals) + (token ? " " + token : "");
}

// @novnc/novnc 1.7 exports its RFB class as the package's only (ESM) entry, while
// @types/novnc__novnc still declares the old "lib/rfb" path. Re-export that type.
declare module "@novnc/novnc" {
  import RFB from "@novnc/novnc/lib/rfb";
  export default RFB;
}

// Images a user attaches, as data URLs the API takes (image_url content parts).

export const MAX_EDGE = 1536;   // px: larger images are scaled down before sending
const MAX_PNG = 400_000;        // characters of a data URL kept as PNG, else JPEG

// An image file as a data URL, scaled to at most MAX_EDGE px (re-encoding also drops
// its metadata, such as a photo's location).
export async function imageDataUrl(file) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, MAX_EDGE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const png = canvas.toDataURL("image/png");
  return png.length <= MAX_PNG ? png : canvas.toDataURL("image/jpeg", 0.85);
}

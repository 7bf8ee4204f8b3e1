// The page the gateway answers (401/403) in place of an operators-only page: sign in, then load it again.
"use strict";

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("login-token");
  const response = await fetch("/v1/session", {
    method: "POST", headers: { Authorization: `Bearer ${input.value.trim()}` },
  });
  input.value = "";
  if (response.ok) {
    location.reload();
  } else {
    document.getElementById("login-reason").textContent = "that is not the operator token";
  }
});
